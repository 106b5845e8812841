import Foundation

/// Scrubs identifiers from free text before it can reach a log line, an error or a metric.
///
/// Replaces, in this order so the more specific shape wins:
/// - email addresses → `[email]`;
/// - Social Security numbers (`123-45-6789`, `123 45 6789`, or nine digits after "SSN") → `[ssn]`;
/// - medical record numbers after a label ("MRN 12345678", "record #A-7781", "medical record
///   number: 445566") → the label kept, the number `[mrn]`;
/// - dates after a birth-date label ("DOB 03/14/1962", "born on March 14, 1962") → `[dob]`;
///   other full dates (`03/14/1962`, `1962-03-14`, `March 14, 1962`, `14 March 1962`) → `[date]`;
/// - US phone numbers (`(555) 123-4567`, `555.123.4567`, `+1 555 123 4567`) → `[phone]`;
/// - street addresses (house number, up to four name words, a street suffix, an optional unit)
///   → `[address]`.
///
/// It is a safety net for diagnostics, not a de-identification tool: names and free-text
/// clues are not removed, which is why free text must never be logged in the first place.
/// The expressions are compiled once; text without a digit or `@` is returned as is.
public enum PHIRedactor {
    /// `text` with every recognised identifier replaced by a typed placeholder.
    public static func redact(_ text: String) -> String {
        guard text.contains(where: { $0.isNumber || $0 == "@" }) else { return text }
        let s = NSMutableString(string: text)
        for rule in rules {
            _ = rule.regex.replaceMatches(in: s, range: NSRange(location: 0, length: s.length), withTemplate: rule.template)
        }
        return s as String
    }

    private struct Rule: Sendable {
        let regex: NSRegularExpression
        let template: String
    }

    private static let month = #"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"#
    private static let date = #"(?:\d{1,2}[/\-.]\d{1,2}[/\-.]\d{2,4}|\d{4}-\d{1,2}-\d{1,2}|"# + month + #"\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?"# + month + #",?\s+\d{4})"#

    private static let rules: [Rule] = [
        (#"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"#, "[email]"),
        (#"(?<![\d\-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d\-])"#, "[ssn]"),
        (#"\b(ssn|social security(?: number| no\.?| #)?)(\s*[:#]?\s*)\d{9}\b"#, "$1$2[ssn]"),
        (#"\b(mrn|medical record(?: number| no\.?| #)?|record(?: number| no\.?| #|#)|chart(?: number| no\.?| #)|patient id|member id|acct(?: no\.?| #)?)(\s*[:#]?\s*#?\s*)(?=[A-Z0-9\-]*\d)[A-Z0-9][A-Z0-9\-]{3,}\b"#, "$1$2[mrn]"),
        (#"\b(dob|d\.o\.b\.?|date of birth|birth ?date|birthday|born(?: on)?)(\s*(?:is|was)?\s*[:\-]?\s*)"# + date, "$1$2[dob]"),
        (#"(?<![\d/])"# + date + #"(?![\d/])"#, "[date]"),
        (#"(?<![\w\[])(?:\+?1[\s.\-]?)?(?:\(\d{3}\)|\d{3})[\s.\-]?\d{3}[\s.\-]?\d{4}(?![\d\-])"#, "[phone]"),
        (#"\b\d{1,6}\s+(?:(?!(?:the|a|an|my|his|her|down|up|to|on|in|of|and|for|from|at|by|blocks?|miles?|minutes?|times?|days?|pills?|tablets?)\b)[a-z0-9][a-z0-9'\-]*\.?\s+){1,4}(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|ter|circle|cir|parkway|pkwy|highway|hwy|trail|trl|square|sq)\b\.?(?:,?\s*(?:apt|apartment|unit|suite|ste|#)\s*\.?\s*#?[a-z0-9\-]+)?"#, "[address]"),
    ].map { pattern, template in
        do {
            return Rule(regex: try NSRegularExpression(pattern: pattern, options: [.caseInsensitive]), template: template)
        } catch {
            preconditionFailure("PHIRedactor: invalid built-in pattern \(pattern): \(error)")
        }
    }
}
