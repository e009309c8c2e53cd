/// One Kiln message: an envelope and, for the bodies that carry bytes
/// (`StreamChunk`, `FetchReply`), the raw data frame that follows it.
package struct WireMessage: Sendable, Equatable {
    package var envelope: Kiln_V1_Envelope
    package var data: [UInt8]?

    package init(_ envelope: Kiln_V1_Envelope, data: [UInt8]? = nil) {
        self.envelope = envelope
        self.data = data
    }

    package init(_ body: Kiln_V1_Envelope.OneOf_Body, requestID: UInt64 = 0, data: [UInt8]? = nil) {
        var envelope = Kiln_V1_Envelope()
        envelope.body = body
        envelope.requestID = requestID
        self.init(envelope, data: data)
    }
}

extension Kiln_V1_Envelope.OneOf_Body {
    /// The protobuf message name, for errors and logs.
    package var name: String {
        switch self {
        case .hello: "Hello"
        case .welcome: "Welcome"
        case .heartbeat: "Heartbeat"
        case .assign: "Assign"
        case .progress: "Progress"
        case .streamChunk: "StreamChunk"
        case .streamEnd: "StreamEnd"
        case .credit: "Credit"
        case .resend: "Resend"
        case .ack: "Ack"
        case .jobFailed: "JobFailed"
        case .cancel: "Cancel"
        case .disconnect: "Disconnect"
        case .submit: "SubmitRequest"
        case .submitReply: "SubmitReply"
        case .status: "StatusRequest"
        case .statusReply: "StatusReply"
        case .logs: "LogsRequest"
        case .logsReply: "LogsReply"
        case .cancelBuild: "CancelRequest"
        case .cancelBuildReply: "CancelReply"
        case .agents: "AgentsRequest"
        case .agentsReply: "AgentsReply"
        case .fetch: "FetchRequest"
        case .fetchReply: "FetchReply"
        case .error: "ErrorReply"
        case .top: "TopRequest"
        case .topReply: "TopReply"
        case .report: "ReportRequest"
        case .reportReply: "ReportReply"
        case .drain: "DrainRequest"
        case .drainReply: "DrainReply"
        case .delete: "DeleteRequest"
        case .deleteReply: "DeleteReply"
        }
    }

    /// The declared size of the data frame for bodies that carry one; nil for
    /// bodies that must not be followed by data.
    package var declaredDataLength: UInt64? {
        switch self {
        case .streamChunk(let chunk): UInt64(chunk.length)
        case .fetchReply(let reply): UInt64(reply.length)
        default: nil
        }
    }
}
