import Foundation
import Testing
import MedViewSafety

@Suite struct MedicationCheckerTests {
    let checker = MedicationChecker.shared

    /// The pairs warned about over a conversation.
    func pairs(_ messages: [String]) -> [[String]] {
        var context = MedicationContext()
        return messages.flatMap { checker.check($0, context: &context).map(\.drugs) }
    }

    @Test func warnsWhenAnEarlierMedicineMeetsANewOne() throws {
        var context = MedicationContext()
        #expect(checker.check("I take Coumadin every day", context: &context).isEmpty)
        let warnings = checker.check("Can I take Advil for my back?", context: &context)
        let w = try #require(warnings.first)
        #expect(warnings.count == 1)
        #expect(w.kind == "medication_interaction")
        #expect(w.drugs == ["ibuprofen", "warfarin"])
        #expect(w.severity == "high")
        #expect(w.advice.contains("bleeding"))
        #expect(w.source.contains("FDA"))
    }

    @Test func aMedicineOnlyMentionedOrForLaterIsNotTakenButOneStartedIs() {
        // Mentioned, then replaced; expected some time in the future; stopped decades ago.
        #expect(pairs(["the doctor mentioned simvastatin but then prescribed rosuvastatin instead. I'm on clarithromycin too"]) == [])
        #expect(pairs(["my cardiologist thinks I'll need amiodarone down the road. for now just warfarin"]) == [])
        #expect(pairs(["I took tranylcypromine back in the 80s. These days I'm on sertraline"]) == [])
        // The same medicines taken now still warn.
        #expect(pairs(["I started amiodarone one day after my surgery and I take warfarin"]) == [["amiodarone", "warfarin"]])
        #expect(pairs(["I'm on warfarin and they may need to put me on amiodarone, is that ok?"]) == [["amiodarone", "warfarin"]])
        #expect(pairs(["in the 2 weeks since I started sertraline I also took tranylcypromine"]) == [["sertraline", "tranylcypromine"]])
    }

    @Test("a medicine read about, warned against, thrown out or never filled is not taken")
    func aMedicineOnlyReadAboutOrRefusedIsNotTaken() {
        #expect(pairs(["I'm on apixaban and I binned all the Advil in the cupboard"]) == [])
        #expect(pairs(["taking warfarin. the leaflet mentions aspirin, I wasn't sure why"]) == [])
        #expect(pairs(["on sertraline, watched a video about tramadol and serotonin last night"]) == [])
        #expect(pairs(["I take lithium and I know ibuprofen is dangerous with it, so paracetamol only"]) == [])
        #expect(pairs(["I'm on lisinopril. my GP wrote me a spironolactone prescription but I never filled it"]) == [])
        #expect(pairs(["on simvastatin, they said they might add amlodipine next year"]) == [])
        // Taken, with the same words nearby, still warns.
        #expect(pairs(["I take my wife's tramadol sometimes when my back is bad. I'm on sertraline"]) == [["sertraline", "tramadol"]])
        #expect(pairs(["I'm on warfarin and I took Advil this morning, is that dangerous?"]) == [["ibuprofen", "warfarin"]])
    }

    @Test func warnsForAPairInOneMessage() {
        #expect(pairs(["I use nitroglycerin. Can I try Viagra?"]) == [["nitroglycerin", "sildenafil"]])
        #expect(pairs(["I'm on oxycodone and my doctor gave me Xanax"]) == [["alprazolam", "oxycodone"]])
    }

    @Test(arguments: [
        (["I take Zoloft", "and Ultram"], ["sertraline", "tramadol"]),
        (["I take Prozac", "and phenelzine"], ["fluoxetine", "phenelzine"]),
        (["I take simvastatin", "and clarithromycin"], ["clarithromycin", "simvastatin"]),
        (["I take lithium", "and naproxen"], ["lithium", "naproxen"]),
        (["I take methotrexate", "and Bactrim"], ["methotrexate", "sulfamethoxazole-trimethoprim"]),
        (["I take Plavix", "and Prilosec"], ["clopidogrel", "omeprazole"]),
        (["I take spironolactone", "and a salt substitute"], ["potassium", "spironolactone"]),
        (["I take NSAIDs", "and warfarin"], ["nsaids", "warfarin"]),
    ])
    func knownPairsUseLowercaseGenericNamesSorted(messages: [String], expected: [String]) {
        #expect(pairs(messages) == [expected])
    }

    @Test func misspelledNamesAreRecognised() {
        #expect(pairs(["i take warfrin", "ibuprofin ok?"]) == [["ibuprofen", "warfarin"]])
        #expect(pairs(["i take simvastatin", "and clarithromicin"]) == [["clarithromycin", "simvastatin"]])
    }

    @Test func nearNamesDoNotCrossMatch() {
        #expect(pairs(["I take Claritin", "and simvastatin"]).isEmpty)
        #expect(pairs(["I take Zyrtec", "and Zoloft"]).isEmpty)
        #expect(pairs(["I take sertraline", "and trazodone"]).isEmpty)
        #expect(checker.mentions(in: "I take Claritin").map(\.name) == ["loratadine"])
    }

    @Test func stoppedMedicinesAreNotPaired() {
        #expect(pairs(["I stopped taking warfarin last year", "Can I take Advil?"]).isEmpty)
        #expect(pairs(["I take warfarin", "my doctor took me off warfarin", "can I take Advil?"]).isEmpty)
        #expect(pairs(["I take Zoloft", "I stopped it last month", "now can I take tramadol?"]).isEmpty)
        #expect(pairs(["I quit oxycodone months ago", "I take Xanax"]).isEmpty)
    }

    @Test("a medicine seen on sale, refused by the pharmacist, ruled out or still being decided is not taken")
    func aMedicineNotBoughtRefusedOrUndecidedIsNotTaken() {
        #expect(pairs(["I'm on Xarelto, noticed ibuprofen on offer at the store but didn't get any"]) == [])
        #expect(pairs(["on sertraline. the pharmacist refused to sell me tramadol without talking to my GP"]) == [])
        #expect(pairs(["taking simvastatin, the doctor ruled out clarithromycin and gave me amoxicillin"]) == [])
        #expect(pairs(["I'm on warfarin and my doctor is deciding whether I should start amiodarone"]) == [])
        #expect(pairs(["I've had a prescription for sildenafil that I never filled, and I use nitroglycerin spray"]) == [])
        #expect(pairs(["I take warfarin. I saw fluconazole for yeast infections at the pharmacy, haven't bought it"]) == [])
        #expect(pairs(["Viagra was suggested at my urology visit but I'm on Imdur so I said no"]) == [])
        #expect(pairs(["On phenelzine. I know to steer clear of Sudafed"]) == [])
        #expect(pairs(["I take Zoloft. The migraine doctor discussed triptans but we went with propranolol instead"]) == [])
        // Bought, filled or started, it warns.
        #expect(pairs(["I'm on Xarelto, ibuprofen was on offer so I bought some and took two this morning"]) == [["ibuprofen", "rivaroxaban"]])
        #expect(pairs(["on sertraline, the pharmacist filled my tramadol today"]) == [["sertraline", "tramadol"]])
    }

    @Test("a medicine 'for' another person is theirs")
    func aMedicineForSomeoneElseIsTheirs() {
        #expect(pairs(["Ambien for me and Norco for my husband"]) == [])
        #expect(pairs(["I take sertraline. The tramadol is for my dad"]) == [])
        #expect(pairs(["I take zolpidem for me and hydrocodone for my back pain"]) == [["hydrocodone", "zolpidem"]])
    }

    @Test("a class named beside one of its own medicines is that medicine, not a second one")
    func aClassBesideItsMedicineIsThatMedicine() {
        #expect(pairs(["I care for my aunt, she's on oxycodone and her new sleeping pill is zolpidem"]) == [["oxycodone", "zolpidem"]])
        #expect(pairs(["my blood thinner is Eliquis and I take aspirin"]) == [["apixaban", "aspirin"]])
        // A class on its own still pairs.
        #expect(pairs(["I'm on oxycodone and I take a sleeping pill at night"]) == [["oxycodone", "sleeping pills"]])
    }

    @Test("CYP2D6 inhibitors with metoprolol, estrogen with lamotrigine, rosuvastatin above 20 mg with clopidogrel")
    func stop18MechanismRules() {
        #expect(pairs(["metoprolol for my heart and paroxetine for depression"]) == [["metoprolol", "paroxetine"]])
        #expect(pairs(["I take Toprol XL and just started Wellbutrin"]) == [["bupropion", "metoprolol"]])
        #expect(pairs(["I take lamotrigine and started a combined pill with ethinyl estradiol"]) == [["ethinyl estradiol", "lamotrigine"]])
        #expect(pairs(["rosuvastatin 40mg and clopidogrel"]) == [["clopidogrel", "rosuvastatin"]])
        #expect(pairs(["I'm on spironolactone and I've been taking ibuprofen every day for my knee"]) == [["ibuprofen", "spironolactone"]])
        #expect(pairs(["my husband has a GTN spray for angina and he just took sildenafil"]) == [["nitroglycerin", "sildenafil"]])
        #expect(pairs(["I'm on phenelzine, my flatmate takes Sudafed"]) == [])
        // Within the label's limit, or a beta-blocker CYP2D6 does not clear, no warning.
        #expect(pairs(["rosuvastatin 10mg and clopidogrel"]) == [])
        #expect(pairs(["atenolol for my blood pressure and paroxetine for anxiety"]) == [])
    }

    @Test func someoneElsesMedicinesAreNotPaired() {
        #expect(pairs(["My wife takes Zoloft", "I take tramadol for my back"]).isEmpty)
        #expect(pairs(["My husband is on nitroglycerin", "I take Viagra"]).isEmpty)
        #expect(checker.mentions(in: "My wife takes Zoloft").first?.status == .someoneElse)
        #expect(pairs(["My mom gave me some of her Percocet", "I already take Ativan"]) == [["lorazepam", "oxycodone"]])
    }

    @Test func aCaregiverIsWarnedAboutThePersonTheyCareFor() {
        #expect(pairs(["my dad is on warfarin", "can I give him ibuprofen for his gout?"]) == [["ibuprofen", "warfarin"]])
        #expect(pairs(["my mom takes oxycontin for her back", "her new doctor added ativan for sleep, is that ok for her?"]) == [["lorazepam", "oxycodone"]])
        // Two people's medicines never pair, even when the patient cares for one of them.
        #expect(pairs(["my dad is on warfarin", "my mom takes Advil", "can I give her more?"]).isEmpty)
        // The patient's own medicines never pair with the person's they care for.
        #expect(pairs(["I take warfarin", "can I give my son ibuprofen?"]).isEmpty)
        // Both medicines one other person's: warned (for them) with or without a caring cue.
        #expect(pairs(["My mom is on warfarin", "she wants to take ibuprofen"]) == [["ibuprofen", "warfarin"]])
    }

    @Test func bothMedicinesOfOneOtherPersonAreWarnedForThem() {
        #expect(pairs(["My mom takes sertraline and she's been adding St John's wort from the health food store"]) == [["sertraline", "st johns wort"]])
        // The husband took the writer's Ativan: the pair is his.
        #expect(pairs(["My husband is on oxycodone after his surgery, and last night he took a couple of my Ativan."]) == [["lorazepam", "oxycodone"]])
        #expect(pairs(["My 15 year old takes fluoxetine. He's got a cough and has been drinking Delsym."]) == [["dextromethorphan", "fluoxetine"]])
        // What they stopped or were never given does not pair.
        #expect(pairs(["My dad used to take Coumadin years ago but he's on Eliquis now"]).isEmpty)
        #expect(pairs(["The ER almost gave my daughter tramadol, but since she's on Prozac they gave her Tylenol instead."]).isEmpty)
        // Two people's medicines never pair.
        #expect(pairs(["grandpa takes digoxin", "grandma just got started on amiodarone"]).isEmpty)
    }

    @Test func aMedicineOnlyMentionedOrRuledOutIsNotTaken() {
        #expect(pairs(["My cardiologist told me Viagra is off limits while I'm on Imdur."]).isEmpty)
        #expect(pairs(["Urgent care was going to give me clarithromycin, but I'm on simvastatin so they switched to doxycycline."]).isEmpty)
        #expect(pairs(["Pharmacy flagged Bactrim with my lisinopril, so the doctor changed it to nitrofurantoin."]).isEmpty)
        #expect(pairs(["My pharmacist said I shouldn't take potassium pills with my spironolactone."]).isEmpty)
        #expect(pairs(["If I ever start an MAOI I'd have to stop my Lexapro first. I'm just on Lexapro right now."]).isEmpty)
        // Cues that only look like negations.
        #expect(pairs(["I take warfarin. If I ever miss a dose, what should I do? Also can I take Advil?"]) == [["ibuprofen", "warfarin"]])
        #expect(pairs(["I shouldn't have taken ibuprofen yesterday with my warfarin"]) == [["ibuprofen", "warfarin"]])
        #expect(pairs(["I take warfarin, and my doctor decided against adding aspirin"]).isEmpty)
        #expect(pairs(["I last took my warfarin this morning", "can I take Advil tonight?"]) == [["ibuprofen", "warfarin"]])
        // "I was going to ask …" is no unrealised prescription.
        #expect(pairs(["I take warfarin", "I was going to ask if ibuprofen is ok for my back"]) == [["ibuprofen", "warfarin"]])
        // A proposal replaced "instead"; a negation of "either" covers the message's medicines.
        #expect(pairs(["doc wanted to give me tramadol but i said i'm on zoloft so she gave me a lidocaine patch instead"]).isEmpty)
        #expect(pairs(["is it safe to take viagra with nitroglycerin? just asking generally, i don't take either"]).isEmpty)
        #expect(pairs(["I keep Nitrostat in my pocket and I take Cialis on weekends. Never had both the same day."]) == [["nitroglycerin", "tadalafil"]])
        #expect(pairs(["doc wanted clarithromycin", "I reminded her I'm on simvastatin so she gave me azithromycin instead"]).isEmpty)
        #expect(pairs(["I take tramadol", "my doctor wants to start me on Zoloft instead of Prozac"]) == [["sertraline", "tramadol"]])
        // "with" ends the negation only after another medicine: the partner is still taken.
        #expect(checker.mentions(in: "my doctor said I shouldn't take Advil with my warfarin").map(\.status) == [.notTaking, .taking])
    }

    @Test func aspirinWithTicagrelorWarnsOnlyAbove100Milligrams() {
        #expect(pairs(["on brilinta with a baby aspirin 81 mg every day"]).isEmpty)
        #expect(pairs(["on brilinta and a baby aspirin"]).isEmpty)
        #expect(pairs(["on brilinta, and I keep taking my regular aspirin 325 every morning"]) == [["aspirin", "ticagrelor"]])
        // Other NSAIDs with an antiplatelet still warn.
        #expect(pairs(["I take Plavix", "can I take Advil?"]) == [["clopidogrel", "ibuprofen"]])
    }

    @Test func aNamedMonthOrSeasonIsAPastTime() {
        #expect(pairs(["I took fluconazole for a yeast infection back in March. Now I just started warfarin."]).isEmpty)
        #expect(pairs(["I was on Prozac until January. Now my neurologist wants to start selegiline."]).isEmpty)
        #expect(pairs(["I last took Sudafed in the winter. This month my neurologist started me on Azilect."]).isEmpty)
        // "since" a past time is ongoing.
        #expect(pairs(["been on xeralto since my clot in may. took 3 ibuprofin for cramps today"]) == [["ibuprofen", "rivaroxaban"]])
        // A time before a comma belongs to the event, not the medicine.
        #expect(pairs(["Had a stent put in in March, on Plavix. I also take Prilosec every morning."]) == [["clopidogrel", "omeprazole"]])
    }

    @Test func aContextStoredBeforePeopleWereTrackedStillDecodes() throws {
        let old = #"{"medicines":["warfarin"],"warnedPairs":[],"lastMentioned":["warfarin"]}"#
        let context = try JSONDecoder().decode(MedicationContext.self, from: Data(old.utf8))
        #expect(context.medicines == ["warfarin"])
        #expect(context.others.isEmpty && context.caredFor.isEmpty)
    }

    @Test func safeAlternativesAreNotWarned() {
        #expect(pairs(["I take Plavix", "my doctor switched me to pantoprazole"]).isEmpty)
        #expect(pairs(["I'm on clopidogrel, is famotidine ok?"]).isEmpty)
        #expect(pairs(["I take warfarin", "can I take Tylenol?"]).isEmpty)
    }

    @Test func aPairIsWarnedOnlyOncePerConversation() {
        #expect(pairs(["I take warfarin", "can I take Advil?", "what about Motrin?", "is Advil ok?"]) == [["ibuprofen", "warfarin"]])
    }

    @Test func negatedMedicinesAreNotTaken() {
        #expect(checker.mentions(in: "I'm not on any opioids").first?.status == .notTaking)
        #expect(pairs(["I'm not on any opioids", "I take Xanax at night"]).isEmpty)
    }

    @Test func contextSurvivesARoundTripThroughJSON() throws {
        var context = MedicationContext()
        _ = checker.check("I take warfarin and Advil", context: &context)
        let data = try JSONEncoder().encode(context)
        var restored = try JSONDecoder().decode(MedicationContext.self, from: data)
        #expect(restored == context)
        #expect(restored.medicines == ["warfarin", "ibuprofen"])
        #expect(checker.check("Advil again?", context: &restored).isEmpty)
        // Aspirin pairs with warfarin (bleeding) and with ibuprofen (two NSAIDs).
        #expect(checker.check("and aspirin?", context: &restored).map(\.drugs) == [["aspirin", "warfarin"], ["aspirin", "ibuprofen"]])
    }
}
