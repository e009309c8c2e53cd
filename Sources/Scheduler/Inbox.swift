import Protocol
import Synchronization

/// Things on their way to the scheduler actor: decoded agent messages,
/// finished downloads. Producers (the socket's reading loop, download lanes)
/// only append, never waiting for the actor; one drain at a time hands
/// everything that has arrived to the actor in a single hop, in arrival
/// order. Under load a hop carries hundreds of items instead of one
/// (dispatch benchmark: docs/benchmarks.md).
final class Inbox<Item: Sendable>: Sendable {
    private let state = Mutex<(items: [Item], draining: Bool)>(([], false))

    /// Appends `item`; true when the caller must start a drain.
    func append(_ item: Item) -> Bool {
        state.withLock { s in
            s.items.append(item)
            if s.draining { return false }
            s.draining = true
            return true
        }
    }

    /// Everything that arrived so far; empty (and the drain over) when nothing did.
    func take() -> [Item] {
        state.withLock { s in
            let items = s.items
            s.items.removeAll(keepingCapacity: true)
            if items.isEmpty { s.draining = false }
            return items
        }
    }
}

/// A decoded message from an agent's DEALER.
struct AgentMessage: Sendable {
    var identity: [UInt8]
    var key: String?
    var message: WireMessage
}

extension FarmScheduler {
    /// Hands what `inbox` holds to `handle`, in arrival order, until it is empty.
    func drain<Item>(_ inbox: Inbox<Item>, _ handle: (isolated FarmScheduler, Item) -> Void) {
        while true {
            let items = inbox.take()
            if items.isEmpty { return }
            for item in items { handle(self, item) }
        }
    }

    /// Handles the agent messages in `inbox` until it is empty.
    func drain(_ inbox: Inbox<AgentMessage>) {
        drain(inbox) { scheduler, i in scheduler.handleAgent(identity: i.identity, key: i.key, message: i.message) }
    }
}
