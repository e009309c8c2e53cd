import Foundation
import Manifest
import Protocol

extension FarmScheduler {
    /// One message from an agent's DEALER. Never throws: whatever a peer
    /// sends, the scheduler keeps serving.
    ///
    /// An agent is whatever its Hello's `agent_id` says (bound to the key
    /// that first said it); its connection is the routing id its Hello came
    /// on. Kiln's agents let the scheduler's ROUTER choose that id, so no
    /// peer can name another agent's connection: a peer that picks the
    /// routing id an agent used to have (its name, before) gets a connection
    /// of its own, and nothing addressed to the agent.
    ///
    /// The actor checks the key (its role, and the key an agent id is
    /// bound to); the core handles the rest (`SchedulerCore.agentHello`,
    /// `agentMessage`).
    package func handleAgent(identity: [UInt8], key: String?, message: WireMessage) {
        guard let body = message.envelope.body else { return act { $0.drop(identity, "message without a body") } }
        if let refusal = agentRefusal(key) {
            let claimed = if case .hello(let h) = body { h.agentID } else { core.agentSessions[identity] ?? "" }
            warnRefused(key, on: "agent", "refused \(body.name) from agent \(AgentText.field(claimed)): \(refusal)")
            var d = Kiln_V1_Disconnect()
            d.reason = refusal
            outbox?.agent(identity, WireMessage(.disconnect(d)))
            return
        }
        if case .hello(let hello) = body {
            guard SchedulerCore.isAgentID(hello.agentID) else { return act { $0.badHello(identity) } }
            return welcome(identity: identity, agentID: hello.agentID, key: key ?? "", hello: hello)
        }
        act { $0.agentMessage(message, on: identity, key: key ?? "") }
    }

    /// Counts a message the server could not decode.
    package func countDropped() {
        droppedMessages += 1
        metrics?.dropped()
    }

    /// A Hello: checks that the agent id is this key's (an id is bound to
    /// the first key that said Hello with it, until an operator releases it
    /// with `kiln agents release`), then the core admits the agent.
    func welcome(identity: [UInt8], agentID: String, key: String, hello: Kiln_V1_Hello) {
        guard let bound = core.agents[agentID]?.publicKey, bound != key else {
            return act { $0.agentHello(hello, on: identity, key: key) }
        }
        // Bound to another key in memory; the operator may have released it
        // since (`kiln agents release` clears the row), so the row decides.
        let records = self.records
        Task {
            let row = try? await records.agentKey(agentID)
            self.welcomeChecked(identity: identity, agentID: agentID, key: key, hello: hello, stored: row ?? bound)
        }
    }

    func welcomeChecked(identity: [UInt8], agentID: String, key: String, hello: Kiln_V1_Hello, stored: String?) {
        if stored == nil || stored == "" || stored == key {
            return act {
                $0.agentRebound(agentID, to: key)
                $0.agentHello(hello, on: identity, key: key)
            }
        }
        droppedMessages += 1
        metrics?.dropped()
        var d = Kiln_V1_Disconnect()
        d.reason =
            "agent id \(agentID) belongs to another key; use another --name, or ask the operator to run "
            + "`kiln agents release \(agentID)` on the scheduler"
        outbox?.agent(identity, WireMessage(.disconnect(d)))
        let t = now
        let last = refusedHellos[agentID]
        if let last, t - last.loggedMS < 60_000 {
            refusedHellos[agentID]?.unlogged += 1
            return
        }
        if refusedHellos.count >= 1000 { refusedHellos.removeAll() }
        refusedHellos[agentID] = (t, 0)
        let more = last.map { $0.unlogged > 0 ? " (\($0.unlogged) more refused since the last warning)" : "" } ?? ""
        let text =
            "refused Hello: agent id \(agentID) is bound to key \(stored ?? "") and was claimed by another key\(more); "
            + "`kiln agents release \(agentID)` frees the id"
        logger.warning("\(text)", metadata: ["agent.id": "\(agentID)", "peer.key": "\(key)"])
    }

    /// Runs every few hundred ms: free space is looked at, retention runs
    /// when due, and the core sees the time (silent agents go offline,
    /// expired leases requeue their jobs).
    package func tick() {
        let t = now
        if t - diskPolledMS >= config.diskPollMS {
            diskPolledMS = t
            checkDisk()
        }
        startRetentionIfDue()
        act { $0.tick() }
    }

    /// Drains agent `id` (it is assigned no new job; what it runs finishes)
    /// or undrains it (it is offered the queue at once): `DrainRequest`, an
    /// admin's. Applied now and committed before it returns, so the mark the
    /// client is told about outlives a restart.
    func setDrained(_ id: String, _ drained: Bool) async throws -> Kiln_V1_DrainReply {
        guard core.agents[id] != nil else {
            throw SchedulerError.notFound("no agent \(AgentText.field(id)) on this scheduler; `kiln agents` lists the agents it knows")
        }
        try db.checkWritable()
        var reply = Kiln_V1_DrainReply()
        act { reply.wasDrained = $0.setDrained(id, drained) ?? false }
        try await records.setDrained(id, drained)
        if let now = core.agents[id] { reply.agent = agentInfo(now) }
        return reply
    }
}
