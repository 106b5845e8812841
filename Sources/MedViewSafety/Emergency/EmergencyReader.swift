import Foundation

/// The learned reader: the detector's third reading of a message, after the signal phrases and
/// the red-flag rules.
///
/// Rules and vocabularies recognise what they were written for; patients describe the same
/// emergency in words nobody listed. The reader is a multinomial logistic regression over the
/// detector's own reading of the message (``EmergencyDetector/features(of:)``: words, corrected
/// misspellings, letter trigrams, word pairs, findings counted as now or not, context cues),
/// trained offline on labelled messages (`docs/safety/reader/train.py`, the data and its
/// sources listed there) and shipped as `Data/reader.json`.
///
/// It only adds alerts: the detector asks it when neither the signals nor the rules alerted,
/// and it alerts when the probability of "no emergency" falls below the model's threshold, with
/// the most probable category's guidance — the product's own text, never generated. It never
/// withdraws a rule's alert: tried with a veto at P(none) ≥ 0.95, held-out sets lost three real
/// emergencies (a collapse with CPR; seizures and an infant's grunting told at the end of a long
/// everyday message) for 118 fewer false alarms, a trade a health companion must not make.
struct EmergencyReader: Sendable {
    /// `Data/reader.json`.
    struct Model: Decodable, Sendable {
        /// The feature schema the weights were trained on; the detector's is ``schema``.
        var schema: Int
        /// Class names; `none` (no emergency) first, then the detector's categories.
        var classes: [String]
        var bias: [Double]
        /// The threshold on the probability of `none`: below it the reader alerts.
        var threshold: Double
        /// Per feature, its weights as pairs of class index and weight (zeros left out).
        var weights: [String: [[Double]]]
    }

    /// The feature layout ``EmergencyDetector/features(of:)`` produces. A model trained on
    /// another layout is refused at load.
    static let schema = 3

    private let classes: [String]
    private let bias: [Double]
    private let threshold: Double
    /// Each feature's row in ``rows``: a message's features are looked up once each, by name.
    private let rowIndex: [String: Int]
    /// Per feature with weights, its weights as pairs of class index and weight.
    private let rows: [[(Int, Double)]]

    init(model: Model) throws(SafetyDataError) {
        guard model.schema == Self.schema else {
            throw .invalidFile("reader.json", "feature schema \(model.schema), the detector computes \(Self.schema)")
        }
        guard model.classes.first == "none", model.bias.count == model.classes.count, model.classes.count > 1,
              model.threshold > 0, model.threshold < 1
        else { throw .invalidFile("reader.json", "classes must start with none and match the biases; threshold in (0, 1)") }
        var rowIndex: [String: Int] = [:]
        var rows: [[(Int, Double)]] = []
        rowIndex.reserveCapacity(model.weights.count)
        rows.reserveCapacity(model.weights.count)
        for (feature, pairs) in model.weights {
            var row: [(Int, Double)] = []
            for p in pairs {
                guard p.count == 2, let c = Int(exactly: p[0]), c >= 0, c < model.classes.count else {
                    throw .invalidFile("reader.json", "weights of \(feature): pairs of class index and weight")
                }
                row.append((c, p[1]))
            }
            rowIndex[feature] = rows.count
            rows.append(row)
        }
        self.classes = model.classes
        self.bias = model.bias
        self.threshold = model.threshold
        self.rowIndex = rowIndex
        self.rows = rows
    }

    /// The row of `feature`'s weights; `nil` for a feature the model gives no weight.
    func row(of feature: String) -> Int? {
        rowIndex[feature]
    }

    /// The class probabilities for a message's features, in ``Model/classes`` order.
    func probabilities(_ features: some Sequence<String>) -> [Double] {
        probabilities(rows: features.lazy.compactMap { rowIndex[$0] })
    }

    /// The class probabilities for the features with these rows (``row(of:)``), in
    /// ``Model/classes`` order.
    func probabilities(rows features: some Sequence<Int>) -> [Double] {
        var logits = bias
        for f in features {
            for (c, w) in rows[f] { logits[c] += w }
        }
        let top = logits.max() ?? 0
        let exps = logits.map { Foundation.exp($0 - top) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    /// The emergency category the reader sees, or `nil` when "no emergency" is likely enough.
    func emergency(in features: some Sequence<String>) -> String? {
        emergency(probabilities: probabilities(features))
    }

    /// The emergency category the reader sees in the features with these rows (``row(of:)``).
    func emergency(rows features: some Sequence<Int>) -> String? {
        emergency(probabilities: probabilities(rows: features))
    }

    private func emergency(probabilities p: [Double]) -> String? {
        guard p[0] < threshold else { return nil }
        var best = 1
        for c in 2..<p.count where p[c] > p[best] { best = c }
        return classes[best]
    }
}
