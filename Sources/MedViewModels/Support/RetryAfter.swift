import Foundation

/// Reads how long a provider asks us to wait from its response headers: `retry-after-ms`
/// (milliseconds, as OpenAI and Azure send), else `Retry-After` as delay-seconds or an HTTP-date
/// (RFC 9110 §10.2.3). Anything unreadable, negative or in the past is ignored.
public enum RetryAfter {
    /// The wait the headers ask for: `retry-after-ms` if readable, else `Retry-After`; nil when neither says.
    public static func parse(milliseconds: String?, retryAfter: String?, now: Date = Date()) -> Duration? {
        if let text = milliseconds?.trimmingCharacters(in: .whitespaces), let ms = Double(text), ms.isFinite, ms >= 0, ms < 86_400_000 {
            return .milliseconds(Int64(ms.rounded(.up)))
        }
        guard let text = retryAfter?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if let seconds = Double(text) {
            guard seconds.isFinite, seconds >= 0, seconds < 86_400 else { return nil }
            return .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        guard let date = httpDate.date(from: text) else { return nil }
        let seconds = date.timeIntervalSince(now)
        guard seconds > 0, seconds < 86_400 else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }

    /// IMF-fixdate, the form servers must send: `Sun, 06 Nov 1994 08:49:37 GMT`.
    private static let httpDate: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter
    }()
}
