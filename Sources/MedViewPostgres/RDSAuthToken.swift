import Foundation
import MedViewAWS

/// Aurora/RDS IAM database authentication tokens: a SigV4-presigned `rds-db:connect` request,
/// used as the password of one new connection.
///
/// The token is `HOST:PORT/?Action=connect&DBUser=USER&X-Amz-…` (the presigned URL without its
/// scheme), signed for the service `rds-db` in the database's region, valid for 15 minutes. The
/// server checks it only when the connection is opened, so a connection outlives its token; new
/// connections need a fresh one.
public enum RDSAuthToken {
    /// How long a token is valid, in seconds (the service's fixed 15 minutes).
    public static let lifetime = 900

    /// The token for `username` at `host:port`, signed with `credentials` at `date`.
    public static func make(host: String, port: Int, username: String, region: String, credentials: SigV4Credentials, date: Date) throws(SigV4Error) -> String {
        let signer = SigV4Signer(service: "rds-db", region: region)
        let authority = "\(host):\(port)"
        let request = SigV4Request(
            method: "GET", path: "/",
            query: [.init("Action", "connect"), .init("DBUser", username)],
            headers: [.init("Host", authority)]
        )
        var presigned = try signer.presign(request, credentials: credentials, date: date, expires: lifetime).request
        // The AWS SDKs' order (sorted, the signature last), so tokens compare equal to theirs.
        let signature = presigned.query.filter { $0.name == "X-Amz-Signature" }
        presigned.query = presigned.query.filter { $0.name != "X-Amz-Signature" }.sorted { $0.name < $1.name } + signature
        return authority + "/?" + presigned.encodedQuery
    }
}
