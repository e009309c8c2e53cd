import Foundation
import GRDB

// The HTTP API's composes (ComposerAPI): a request and the builds it became.
extension SchedulerStore {
    /// Records a compose; returns once it is durable.
    func insertCompose(_ c: ComposeView, request: Data) async throws {
        try await database.commit { db in
            try db.cachedStatement(
                sql: "INSERT INTO composes (id, owner, created_ms, distribution, request) VALUES (?, ?, ?, ?, ?)"
            ).execute(arguments: [c.id, c.owner, c.createdMS, c.distribution, request])
            for (ordinal, image) in c.images.enumerated() {
                try db.cachedStatement(
                    sql: "INSERT INTO compose_images (compose_id, ordinal, build_id, arch, image_type) VALUES (?, ?, ?, ?, ?)"
                ).execute(arguments: [c.id, ordinal, image.buildID, image.arch, image.imageType])
            }
        }
    }

    /// Compose `id` with its images' builds, if `owner` (nil: an admin) may see it.
    func compose(_ id: String, owner: String?) async throws -> ComposeView? {
        try await database.read { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT id, owner, created_ms, distribution FROM composes WHERE id = ? AND (? IS NULL OR owner = ?)",
                arguments: [id, owner, owner])
            return try row.map { try Self.composeView($0, db) }
        }
    }

    /// One page of the composes `owner` (nil: every owner) may see, newest first, and how many there are.
    func composes(owner: String?, offset: Int, limit: Int) async throws -> (total: Int, page: [ComposeView]) {
        try await database.read { db in
            let total =
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM composes WHERE ? IS NULL OR owner = ?", arguments: [owner, owner]) ?? 0
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, owner, created_ms, distribution FROM composes WHERE ? IS NULL OR owner = ?
                    ORDER BY created_ms DESC, id LIMIT ? OFFSET ?
                    """, arguments: [owner, owner, limit, offset])
            return (total, try rows.map { try Self.composeView($0, db) })
        }
    }

    private static func composeView(_ row: Row, _ db: Database) throws -> ComposeView {
        let id: String = row["id"]
        let images = try Row.fetchAll(
            db,
            sql: """
                SELECT i.build_id, i.arch, i.image_type, b.state, b.failure FROM compose_images i
                LEFT JOIN builds b ON b.id = i.build_id WHERE i.compose_id = ? ORDER BY i.ordinal
                """, arguments: [id]
        ).map { r in
            var image = ComposeImage(
                buildID: r["build_id"], arch: r["arch"], imageType: r["image_type"],
                state: (r["state"] as Int?).flatMap { BuildState(stored: $0) })
            image.failure = r["failure"] ?? ""
            return image
        }
        return ComposeView(id: id, owner: row["owner"], createdMS: row["created_ms"], distribution: row["distribution"], images: images)
    }

    /// The request compose `id` was made from, as it was sent.
    func composeRequest(_ id: String) async throws -> Data? {
        try await database.read { db in try Data.fetchOne(db, sql: "SELECT request FROM composes WHERE id = ?", arguments: [id]) }
    }

    /// A build's manifest (nil: no such build).
    func manifest(buildID: String) async throws -> Data? {
        try await database.read { db in try Data.fetchOne(db, sql: "SELECT manifest FROM builds WHERE id = ?", arguments: [buildID]) }
    }

    /// A build's artifacts, by name.
    func artifacts(buildID: String) async throws -> [(name: String, path: String, size: Int64)] {
        try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT name, path, size FROM artifacts WHERE build_id = ? ORDER BY name", arguments: [buildID])
                .map { ($0["name"], $0["path"], $0["size"]) }
        }
    }

    /// Removes compose `id`'s own rows (its builds are deleted on their own).
    func deleteCompose(_ id: String) async throws {
        try await database.commit { db in
            try db.execute(sql: "DELETE FROM compose_images WHERE compose_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM composes WHERE id = ?", arguments: [id])
        }
    }
}
