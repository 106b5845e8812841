import Crypto
import Foundation
import Hummingbird
import HTTPTypes

/// The web chat page's static files, read once from the bundle at start-up and served from memory
/// with validators, caching headers and a strict Content-Security-Policy (no inline script).
struct WebAssets: Sendable {
    struct Asset: Sendable {
        var body: ByteBuffer
        var contentType: String
        var etag: String
    }

    /// Files by path relative to the `Web` folder, such as `index.html` or `js/app.js`.
    let assets: [String: Asset]
    /// Other origins the page may connect to (the Cognito Hosted UI).
    let connectSources: [String]

    /// The policy every page response carries: scripts, styles and connections from this origin
    /// only, plus `connectSources` (the Cognito Hosted UI, whose token endpoint the page calls).
    ///
    /// `host` is the authority the page was requested from (its `Host`): the page's WebSocket
    /// goes to `ws://host` or `wss://host` and nowhere else (`'self'` alone does not cover
    /// WebSocket schemes in every browser). A `Host` that is not a plausible authority is left out.
    static func contentSecurityPolicy(host: String? = nil, connectSources: [String] = []) -> String {
        var connect = ["connect-src 'self'"]
        if let host, HostName.split(authority: host) != nil {
            connect += ["http://\(host)", "https://\(host)", "ws://\(host)", "wss://\(host)"]
        }
        return [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            (connect + connectSources).joined(separator: " "),
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ].joined(separator: "; ")
    }

    /// Loads every file under `directory`, or under the bundle's `Web` folder when it is `nil`.
    static func load(directory: String? = nil, connectSources: [String] = []) -> WebAssets {
        let bundled = Bundle.module.url(forResource: "Web", withExtension: nil)
        guard let root = directory.map({ URL(fileURLWithPath: $0) }) ?? bundled else { return WebAssets(assets: [:], connectSources: connectSources) }
        var assets: [String: Asset] = [:]
        let base = root.standardizedFileURL.path
        if let walker = FileManager.default.enumerator(atPath: base) {
            for case let relative as String in walker {
                let path = base + "/" + relative
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                      let data = FileManager.default.contents(atPath: path) else { continue }
                let digest = SHA256.hash(data: data).prefix(12).map { String(format: "%02x", $0) }.joined()
                assets[relative] = Asset(body: ByteBuffer(data: data), contentType: contentType(for: relative), etag: "\"\(digest)\"")
            }
        }
        return WebAssets(assets: assets, connectSources: connectSources)
    }

    static func contentType(for path: String) -> String {
        switch (path as NSString).pathExtension.lowercased() {
        case "html": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "json", "webmanifest": "application/json; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        default: "application/octet-stream"
        }
    }

    /// The response for `path`, or `nil` when there is no such file. HTML is revalidated on every
    /// load; other files may be cached briefly and are revalidated with their ETag. `host` is the
    /// request's authority, for the Content-Security-Policy.
    func response(for path: String, ifNoneMatch: String?, host: String?) -> Response? {
        guard !path.contains(".."), let asset = assets[path] else { return nil }
        var headers: HTTPFields = [
            .contentType: asset.contentType,
            .eTag: asset.etag,
            .cacheControl: asset.contentType.hasPrefix("text/html") ? "no-cache" : "public, max-age=300, must-revalidate",
            .contentSecurityPolicy: Self.contentSecurityPolicy(host: host, connectSources: connectSources),
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
        ]
        if let ifNoneMatch, ifNoneMatch.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == asset.etag }) {
            headers[.contentType] = nil
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }
}
