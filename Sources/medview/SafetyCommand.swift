import ArgumentParser
import Foundation
import MedViewSafety

/// `medview safety …`: the safety layer's evaluation and data tools.
struct SafetyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safety",
        abstract: "Evaluate the clinical safety layer and audit its data.",
        subcommands: [Eval.self, VocabularyAudit.self, Features.self, Mentions.self]
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

    struct Features: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "features",
            abstract: "Print the learned reader's training rows for an emergency set (JSON Lines: id, expect, also, trap, rules, features).",
            discussion: "Used by docs/safety/reader/train.py, so the reader is trained on exactly the features the detector computes."
        )

        @Option(help: "An emergency set, JSON Lines in the layout of Data/eval/emergency.jsonl.")
        var emergency: String

        func run() async throws {
            let path = URL(fileURLWithPath: emergency).standardizedFileURL.path
            for row in try SafetyEvaluation.readerRows(emergencyFile: path) { print(row) }
        }
    }

    struct Mentions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mentions",
            abstract: "Print the medicines the checker reads in each message and what it reads about each (a diagnostic).",
            discussion: "For example: medview safety mentions \"I take Plavics\" \"my mom is on warfarin\""
        )

        @Argument(help: "Messages of one conversation, in order.")
        var messages: [String]

        func run() async throws {
            let checker = try MedicationChecker()
            var context = MedicationContext()
            for message in messages {
                for m in checker.mentions(in: message) {
                    print("\(m.name)\t\(m.status.rawValue)\(m.person.map { "\t" + $0 + ":" + m.theirStatus.rawValue } ?? "")\(m.stoppedDaysAgo.map { "\tstopped \($0) days ago" } ?? "")")
                }
                for w in checker.check(message, context: &context) { print("WARNING \(w.drugs.joined(separator: " + ")) (\(w.interactionId))") }
            }
        }
    }
}
