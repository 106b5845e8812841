import Foundation
import Testing
@testable import MedViewSafety

/// Every mechanism rule of `knowledge.json`, tested from the data: one medicine of each side
/// (by generic name, by brand name, and by a misspelled brand), the exceptions, and the dose
/// limits read from the message.
@Suite struct KnowledgeRuleTests {
    let checker = MedicationChecker.shared

    struct Pick { var generic: String; var brand: String? }

    /// A medicine for one side of a rule: the named generic, or the first with the class; with
    /// a one-word brand name of 6+ letters when it has one.
    static func pick(_ side: [String], avoiding: String? = nil, except: [String]) throws -> Pick? {
        let knowledge = try SafetyData.decode(DrugKnowledgeData.self, from: "knowledge.json")
        let lexicon = try SafetyData.decode(DrugLexiconData.self, from: "drugs.json")
        let drugs = knowledge.drugs + lexicon.drugs
        for key in side {
            let candidates = key.hasPrefix("class:")
                ? drugs.filter { $0.classes.contains(String(key.dropFirst(6))) }
                : drugs.filter { $0.generic == key }
            for d in candidates where d.generic != avoiding && !except.contains(d.generic) && d.generic.allSatisfy({ $0.isLetter || $0 == " " }) {
                let brand = d.names.first { $0.count >= 6 && $0.allSatisfy(\.isLetter) }
                return Pick(generic: d.generic, brand: brand)
            }
        }
        return nil
    }

    static var ruleIds: [String] {
        (try? SafetyData.decode(DrugKnowledgeData.self, from: "knowledge.json").interactions.map(\.id)) ?? []
    }

    func warned(_ messages: [String]) -> [[String]] {
        var context = MedicationContext()
        return messages.flatMap { checker.check($0, context: &context).map(\.drugs) }
    }

    @Test(arguments: ruleIds)
    func eachMechanismRuleWarnsByGenericBrandAndMisspelledBrand(id: String) throws {
        let knowledge = try SafetyData.decode(DrugKnowledgeData.self, from: "knowledge.json")
        let rule = knowledge.interactions.first { $0.id == id }!
        let except = rule.exceptions ?? []
        let a = try #require(try Self.pick(rule.a, except: except), "no medicine for \(rule.a)")
        let b = try #require(try Self.pick(rule.b, avoiding: a.generic, except: except), "no medicine for \(rule.b)")
        let pair = [a.generic, b.generic].sorted()
        #expect(checker.interaction(a.generic, b.generic) != nil, "\(id): \(pair) has no interaction")
        #expect(warned(["I take \(a.generic) and \(b.generic) every day"]) == [pair], "\(id): generic names")
        #expect(warned(["I'm on \(a.generic.uppercased())", "can I take \(b.generic)?"]) == [pair], "\(id): split over two messages")
        if let ba = a.brand, let bb = b.brand {
            // A brand may name several ingredients (Entresto: sacubitril and valsartan).
            #expect(warned(["Im on \(ba), is \(bb) ok with it"]).contains(pair), "\(id): brands \(ba), \(bb)")
            var c = Array(bb)
            c.remove(at: 3)
            #expect(warned(["i take \(ba) and my doctor added \(String(c))"]).contains(pair), "\(id): misspelled \(String(c))")
        }
        // Someone else's medicine never pairs with the patient's; a stopped one does not pair.
        #expect(warned(["I take \(a.generic). My neighbor takes \(b.generic)."]).isEmpty, "\(id): other person")
        #expect(warned(["I stopped taking \(a.generic) last year", "now I take \(b.generic)"]).isEmpty, "\(id): stopped")
    }

    @Test func simvastatinLimitsFollowTheStatedDose() {
        #expect(warned(["I take simvastatin 10 mg and my doctor added diltiazem"]).isEmpty)
        #expect(warned(["I take simvastatin 40 mg and my doctor added diltiazem"]) == [["diltiazem", "simvastatin"]])
        #expect(warned(["on zocor 20 and just started norvasc"]).isEmpty)
        #expect(warned(["on zocor 40mg, just started norvasc"]) == [["amlodipine", "simvastatin"]])
        #expect(warned(["I take 20 milligrams of simvastatin", "my cardiologist started amiodarone"]).isEmpty)
        // No dose stated: warn, the advice names the limit.
        var context = MedicationContext()
        let w = checker.check("I take simvastatin and amlodipine", context: &context)
        #expect(w.map(\.drugs) == [["amlodipine", "simvastatin"]])
        #expect(w.first?.advice.contains("20 mg") == true)
        // A strong inhibitor is contraindicated whatever the dose.
        #expect(warned(["simvastatin 5 mg", "got clarithromycin for bronchitis"]) == [["clarithromycin", "simvastatin"]])
    }

    @Test func ruleExceptionsAndTheSameMedicineNeverPair() {
        #expect(checker.interaction("sertraline", "sertraline") == nil)
        // Diltiazem is excepted from the general moderate-inhibitor statin rule: only its dose rule applies.
        #expect(checker.interaction("diltiazem", "simvastatin", doses: ["simvastatin": 10]) == nil)
    }

    /// The rules a pair can match are looked up by key (``MedicationChecker/interaction(_:_:doses:)``);
    /// every pair of names the checker knows, with and without each dose-limited medicine's
    /// stated dose, gets what a scan of every rule in order gives.
    @Test func aPairGetsTheRuleAScanOfEveryRuleGives() {
        let entries = checker.entries
        let rules = checker.interactions
        var keysByName: [String: Set<String>] = [:]
        for e in entries where keysByName[e.name] == nil { keysByName[e.name] = e.keys }
        // For each name, the rules it is on side a of, and on side b of (one flag per rule).
        var onA: [String: [Bool]] = [:]
        var onB: [String: [Bool]] = [:]
        for (name, keys) in keysByName {
            onA[name] = rules.map { !Set($0.a).isDisjoint(with: keys) }
            onB[name] = rules.map { !Set($0.b).isDisjoint(with: keys) }
        }
        func scanned(_ a: String, _ b: String, doses: [String: Double]) -> String? {
            guard a != b, let aa = onA[a], let ab = onB[a], let ba = onA[b], let bb = onB[b] else { return nil }
            var best: InteractionData.Interaction?
            for r in rules.indices where (aa[r] && bb[r]) || (ba[r] && ab[r]) {
                let i = rules[r]
                if let ex = i.exceptions, ex.contains(a) || ex.contains(b) { continue }
                if let limit = i.dose, limit.drug == a || limit.drug == b, let stated = doses[limit.drug], stated <= limit.maxMg { continue }
                if best == nil || (best!.severity != "high" && i.severity == "high") { best = i }
            }
            return best?.id
        }
        // Every name with a key on some rule's side, and some without (they match nothing).
        let ruleKeys = Set(rules.flatMap { $0.a + $0.b })
        var names: [String] = []
        var others = 0
        for e in entries where keysByName[e.name] == e.keys && !names.contains(e.name) {
            if !e.keys.isDisjoint(with: ruleKeys) {
                names.append(e.name)
            } else if others < 20 {
                names.append(e.name)
                others += 1
            }
        }
        var doseCases: [[String: Double]] = [[:]]
        for rule in rules {
            guard let limit = rule.dose else { continue }
            doseCases += [[limit.drug: limit.maxMg], [limit.drug: limit.maxMg + 1]]
        }
        var pairs = 0
        var matched = 0
        var mismatches: [String] = []
        for a in names {
            for b in names {
                pairs += 1
                let expected = scanned(a, b, doses: [:])
                if expected != nil { matched += 1 }
                if checker.interaction(a, b)?.id != expected { mismatches.append("\(a) + \(b)") }
            }
        }
        for doses in doseCases.dropFirst() {
            let drug = doses.keys.first!
            for b in names where checker.interaction(drug, b, doses: doses)?.id != scanned(drug, b, doses: doses) {
                mismatches.append("\(drug) \(doses[drug]!) mg + \(b)")
            }
        }
        #expect(mismatches.count == 0, "the first: \(mismatches.prefix(10))")
        #expect(names.count > 100 && others == 20)
        // The data has pairs that interact and pairs that do not.
        #expect(matched > 100 && matched < pairs)
    }

    @Test func combinationProductsNameEachIngredient() {
        #expect(Set(checker.mentions(in: "I take Lotrel").map(\.name)) == ["amlodipine", "benazepril"])
        #expect(warned(["I take Lotrel", "my doctor added losartan"]) == [["benazepril", "losartan"]])
    }

    @Test func theKnowledgeBaseStatesItsLicence() throws {
        let knowledge = try SafetyData.decode(DrugKnowledgeData.self, from: "knowledge.json")
        #expect(knowledge.licence.contains("public-domain"))
        #expect(knowledge.drugs.count >= 300)
        for r in knowledge.interactions {
            #expect(!r.source.isEmpty && !r.advice.isEmpty, "\(r.id)")
            #expect(["high", "moderate"].contains(r.severity), "\(r.id)")
        }
    }
}
