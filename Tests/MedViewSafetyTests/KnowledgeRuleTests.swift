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
