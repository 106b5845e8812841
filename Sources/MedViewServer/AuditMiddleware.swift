import Foundation
import HTTPTypes
import Hummingbird
import MedViewCore

/// Records every authenticated `/v1` request in the audit trail: which conversation or stream it
/// touched, and how it ended (a refusal carries its wire code). Runs after ``AuthMiddleware``,
/// which records refused sign-ins itself. Never records a body or a header value.
struct AuditMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let audit: any AuditSink

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let (action, record) = Self.action(method: request.method, path: request.uri.path) else {
            return try await next(request, context)
        }
        var event = AuditEvent(action: action, userId: context.identity?.userId, channelId: context.id, sourceAddress: context.sourceAddress, record: record)
        do {
            let response = try await next(request, context)
            if event.record == nil, let location = response.headers[.location] {
                event.record = location.split(separator: "/").last.map(String.init)
            }
            if response.status.code >= 400 {
                event.outcome = response.status.code >= 500 ? .failed : .refused
            }
            audit.record(event)
            return response
        } catch let error as APIError {
            event.outcome = error.code.httpStatus >= 500 ? .failed : .refused
            event.reason = error.code.rawValue
            audit.record(event)
            throw error
        } catch {
            event.outcome = .failed
            audit.record(event)
            throw error
        }
    }

    /// The audited action of a `/v1` route and the record in its path.
    static func action(method: HTTPRequest.Method, path: String) -> (AuditEvent.Action, String?)? {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.first == "v1" else { return nil }
        switch (method, Array(parts.dropFirst())) {
        case (.get, ["conversations"]): return (.conversationsListed, nil)
        case (.post, ["conversations"]): return (.conversationCreated, nil)
        case (.get, let p) where p.count == 3 && p[0] == "conversations" && p[2] == "messages": return (.conversationRead, p[1])
        case (.post, let p) where p.count == 3 && p[0] == "conversations" && p[2] == "messages": return (.messageSent, p[1])
        case (.delete, let p) where p.count == 2 && p[0] == "conversations": return (.conversationDeleted, p[1])
        case (.get, let p) where p.count == 2 && p[0] == "streams": return (.streamResumed, p[1])
        case (.post, let p) where p.count == 3 && p[0] == "streams" && p[2] == "cancel": return (.streamCancelled, p[1])
        default: return nil
        }
    }
}
