import ArgumentParser
import Foundation
import MedViewSafety

/// `medview safety …`: the safety layer's evaluation and data tools.
struct SafetyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safety",
        abstract: "Evaluate the clinical safety layer and audit its data.",
        subcommands: [Eval.self, Bench.self, VocabularyAudit.self]
    )

    struct Eval: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "eval",
            abstract: "Run the emergency and interaction evaluation sets and print recall and precision per category."
        )

        @Flag(help: "Exit with status 1 when the aims are not met (emergency recall ≥ 98%, precision ≥ 95%; interactions ≥ 95%/95%).")
        var check = false
        @Option(help: "Score this emergency set (JSON Lines, the layout of Data/eval/emergency.jsonl) instead of the bundled sets; needs --interactions.")
        var emergency: String?
        @Option(help: "Score this interaction set (JSON Lines, the layout of Data/eval/interactions.jsonl); needs --emergency.")
        var interactions: String?
        @Option(help: "Also measure the misspelling tolerance of the medication names, with this word list for false matches (e.g. /usr/share/dict/american-english-insane from Debian's wamerican-insane).")
        var dictionary: String?

        func validate() throws {
            guard (emergency == nil) == (interactions == nil) else { throw ValidationError("--emergency and --interactions go together.") }
        }

        func run() async throws {
            let absolute = { (path: String) in URL(fileURLWithPath: path).standardizedFileURL.path }
            let report = try emergency.map { try SafetyEvaluation.run(emergencyFile: absolute($0), interactionFile: absolute(interactions!)) } ?? SafetyEvaluation.run()
            print(report.text)
            if let dictionary {
                let words = try String(contentsOfFile: dictionary, encoding: .utf8).split(whereSeparator: \.isNewline).map(String.init)
                print("")
                print(try SafetyMisspellingMeasure.run(dictionary: words).text)
            }
            if check && !report.meetsAims { throw ExitCode(1) }
        }
    }

    struct VocabularyAudit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "vocab-audit",
            abstract: "List real words the misspelling index would correct into a key term (candidates for protectedWords).",
            discussion: "For example: apt-get install wamerican-large; medview safety vocab-audit --dictionary /usr/share/dict/american-english-large"
        )

        @Option(help: "A word list, one word per line.")
        var dictionary: String

        func run() async throws {
            let words = try String(contentsOfFile: dictionary, encoding: .utf8).split(whereSeparator: \.isNewline).map(String.init)
            let collisions = try SafetyVocabularyAudit.collisions(dictionary: words)
            for c in collisions { print("\(c.word)\t\(c.term)\t\(c.vocabulary)") }
            FileHandle.standardError.write(Data("\(collisions.count) collisions\n".utf8))
        }
    }
}

extension SafetyCommand {
    /// `medview safety bench`: what the safety pass costs on the hot path.
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the output guard per 256-character chunk and the checks per message (use a release build).",
            discussion: "Build with `swift build -c release --product medview` for figures worth comparing."
        )

        @Option(help: "Chunks to scan.")
        var chunks = 20_000

        func run() async throws {
            // Realistic model text: calm health information, cut into 256-character chunks the way
            // the stream engine sends them.
            let paragraph = "Staying hydrated, resting and taking your medicines exactly as prescribed are good habits. If your headache gets worse, comes with a stiff neck, fever or confusion, call your doctor today. Ibuprofen can upset the stomach; take it with food and no more than the label says. "
            let text = String(repeating: paragraph, count: chunks * 256 / paragraph.count + 1)
            var pieces: [String] = []
            var rest = Substring(text)
            while pieces.count < chunks, !rest.isEmpty {
                pieces.append(String(rest.prefix(256)))
                rest = rest.dropFirst(256)
            }
            let policy = try OutputPolicy()
            var guardState = StreamGuard(policy: policy)
            var released = 0
            let clock = ContinuousClock()
            let start = clock.now
            for piece in pieces {
                released += guardState.append(piece).release.count
            }
            released += guardState.finish().release.count
            let guardTime = clock.now - start
            let perChunk = Double(guardTime.components.attoseconds) / 1e12 / Double(pieces.count) + Double(guardTime.components.seconds) * 1e6 / Double(pieces.count)

            let detector = EmergencyDetector.shared
            let checker = MedicationChecker.shared
            let messages = [
                "I have had a headache for three days and ibuprofen is not helping much, what else can I try?",
                "my dad's face is drooping and he can't lift his arm",
                "I take warfarin every day, can I take Advil for my back pain?",
                "how much water should i drink when i have a cold",
            ]
            let rounds = 2_000
            let t0 = clock.now
            var hits = 0
            for _ in 0..<rounds {
                for m in messages where detector.assess(m) != nil { hits += 1 }
            }
            let assessTime = clock.now - t0
            let t1 = clock.now
            for _ in 0..<rounds {
                for m in messages {
                    var context = MedicationContext()
                    hits += checker.check(m, context: &context).count
                }
            }
            let checkTime = clock.now - t1
            func micros(_ d: Duration, _ n: Int) -> String {
                String(format: "%.1f µs", (Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12) / Double(n))
            }
            print("medview safety bench (\(pieces.count) chunks of 256 characters; \(rounds * messages.count) messages)")
            print("  output guard:        \(String(format: "%.1f µs", perChunk)) per 256-character chunk (\(released) characters released)")
            print("  emergency detector:  \(micros(assessTime, rounds * messages.count)) per message")
            print("  medication checker:  \(micros(checkTime, rounds * messages.count)) per message (\(hits) hits)")
        }
    }
}

