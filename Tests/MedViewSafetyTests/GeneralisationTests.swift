import Foundation
import Testing
@testable import MedViewSafety

/// The mechanisms added on branch `safety2` for generalisation: who is affected (an animal is not
/// a patient), strong and weak suicide warning signs, measures that need a real clinical context,
/// washout periods after a medicine is stopped, and a caregiver reporting changes to another
/// person's regimen. Examples are written for these tests, not taken from any evaluation set.
@Suite struct GeneralisationTests {
    let detector = EmergencyDetector.shared
    let checker = MedicationChecker.shared

    /// The pairs warned about over a conversation, each pair sorted.
    func pairs(_ messages: [String]) -> [[String]] {
        var context = MedicationContext()
        return messages.flatMap { checker.check($0, context: &context).map { $0.drugs.sorted() } }
    }

    // MARK: Who: animals

    @Test(arguments: [
        "our kitten is limp and not breathing right",
        "my labrador got into the rat poison in the shed",
        "the puppy had a seizure and is shaking on the floor",
        "my parrot isnt moving, is he unconscious?",
    ])
    func anAnimalAloneGetsNoEmergencyAlert(text: String) {
        #expect(detector.assess(text) == nil, "\(text) → \(detector.assess(text)?.category ?? "")")
    }

    @Test func aPersonWithAnAnimalStillAlerts() {
        // The writer or another person is named: the animal is not the patient.
        #expect(detector.assess("my son and our dog both ate the rat poison in the shed") != nil)
        #expect(detector.assess("I'm walking the dog and suddenly my face is drooping on one side") != nil)
        // An animal that bit or attacked someone is the cause.
        #expect(detector.assess("got bitten by a stray dog, bleeding everywhere and it won't stop") != nil)
    }

    // MARK: Measures need a clinical context

    @Test(arguments: [
        "Question number 3 about sleep.",
        // "number" was a blood-sugar word: any number from 10 to 54 next to it read as a severe low.
        "Question number 13 about sleep.",
        "My answer to number 42 was wrong",
        "Number 2 on the list: what helps with insomnia?",
        "my lucky number is 7 and I feel a bit shaky after coffee",
    ])
    func aBareNumberIsNotABloodSugar(text: String) {
        #expect(detector.assess(text) == nil, "\(text) → \(detector.assess(text)?.category ?? "")")
    }

    @Test func aStatedSugarStillCounts() {
        #expect(detector.assess("my blood sugar is 38 and I am shaking")?.category == "diabetic")
        #expect(detector.assess("my sugar is 42")?.category == "diabetic")
    }

    // MARK: Suicide: one strong sign with a second sign

    @Test(arguments: [
        "I've made up my mind, tonight is the night",
        "been reading up on how many pills would do it, I have two bottles here",
        "my brother keeps talking about his gun and said he will be with mom soon",
        "I'm standing on the overpass, just wanted someone to know",
    ])
    func codedSuicideLanguageAlerts(text: String) {
        #expect(detector.assess(text)?.category == "suicide", "\(text) → \(detector.assess(text)?.category ?? "none")")
    }

    @Test(arguments: [
        "I have a party tonight and another one on friday",
        "we went to the gun range this weekend",
        "the pharmacy said my pills will be ready tomorrow",
    ])
    func weakSignsAloneStayQuiet(text: String) {
        // The rules need two weak warning signs. The learned reader weighs them statistically
        // and does alert on some of these ("party tonight", "gun range": suicide); its false
        // alerts on ordinary messages are measured, not tested: docs/SAFETY.md.
        let rules = SharedDetectors.rulesOnly
        #expect(rules.assess(text) == nil, "\(text) → \(rules.assess(text)?.category ?? "")")
    }

    // MARK: Interactions: washout after stopping

    @Test func aStoppedMedicineWithALongWashoutStillInteracts() {
        // MAO inhibitors: 14 days (FDA labels); fluoxetine: 5 weeks; amiodarone: weeks to months.
        #expect(pairs(["I quit Parnate 5 days ago", "my doctor started me on Zoloft"]) == [["sertraline", "tranylcypromine"]])
        #expect(pairs(["I stopped fluoxetine last week", "now they want me on selegiline"]) == [["fluoxetine", "selegiline"]])
        #expect(pairs(["they stopped my cordarone 2 weeks ago", "I just started coumadin"]) == [["amiodarone", "warfarin"]])
    }

    @Test func aWashoutThatHasPassedDoesNotWarn() {
        #expect(pairs(["I quit Parnate 2 months ago", "my doctor started me on Zoloft"]).isEmpty)
        #expect(pairs(["I used to take Prozac", "my doctor wants to start me on phenelzine"]).isEmpty)
        // A medicine without a washout class is gone when stopped.
        #expect(pairs(["I stopped Zoloft 3 days ago", "can I take tramadol?"]).isEmpty)
    }

    @Test func daysAgoIsReadFromTheClause() {
        let mentions = checker.mentions(in: "I stopped phenelzine 10 days ago")
        #expect(mentions.first?.status == .stopped)
        #expect(mentions.first?.stoppedDaysAgo == 10)
        #expect(checker.mentions(in: "I stopped phenelzine 3 weeks ago").first?.stoppedDaysAgo == 21)
        #expect(checker.mentions(in: "I stopped phenelzine yesterday").first?.stoppedDaysAgo == 1)
        #expect(checker.mentions(in: "I stopped phenelzine").first?.stoppedDaysAgo == nil)
    }

    @Test func anAgeInDecadesIsNotWhenAMedicineStopped() {
        // "In my seventies" says how old, not when: the stop is still read from "10 days ago".
        for decade in ["sixties", "seventies", "eighties", "nineties"] {
            #expect(checker.mentions(in: "I'm in my \(decade) and stopped phenelzine 10 days ago").first?.stoppedDaysAgo == 10, "\(decade)")
        }
        #expect(pairs(["I'm in my seventies and quit Parnate 5 days ago", "my doctor started me on Zoloft"]) == [["sertraline", "tranylcypromine"]])
        // "In the eighties" is a time: years ago.
        #expect(checker.mentions(in: "I stopped phenelzine in the eighties").first?.stoppedDaysAgo == 3650)
    }

    // MARK: Interactions: a caregiver reporting another person's regimen

    @Test func aClinicianChangingAnotherPersonsRegimenIsWarned() {
        #expect(pairs(["my grandpa takes warfarin", "his cardiologist added amiodarone"]) == [["amiodarone", "warfarin"]])
        #expect(pairs(["mom is on lisinopril", "the doctor started her on spironolactone"]) == [["lisinopril", "spironolactone"]])
        #expect(pairs(["my husband takes Eliquis", "I've been giving him Aleve for his knee"]) == [["apixaban", "naproxen"]])
    }

    @Test func otherPeoplesMedicinesStillNeverPairWithTheWriters() {
        #expect(pairs(["I take warfarin", "the doctor started my son on amoxicillin"]).isEmpty)
        #expect(pairs(["my dad is on warfarin", "the doctor gave me ibuprofen"]).isEmpty)
    }
    // MARK: Interactions: numbered products, short washouts, dose limits, ongoing use (stop 17)

    @Test func aNumberedProductIsThatProduct() {
        // Tylenol #3 is acetaminophen with codeine; plain Tylenol (any strength) is acetaminophen.
        #expect(pairs(["the dentist gave me Tylenol #3", "I take lorazepam at night"]) == [["codeine", "lorazepam"]])
        #expect(pairs(["tylenol no. 3 for my tooth and valium for my back"]) == [["codeine", "diazepam"]])
        #expect(pairs(["tylenol 500 for my tooth and valium for my back"]).isEmpty)
        #expect(Set(checker.mentions(in: "I have some Tylenol #4 left").map(\.name)) == ["codeine", "acetaminophen"])
    }

    @Test func fluconazoleStillInteractsForAWeekAfterTheLastDose() {
        #expect(pairs(["I finished my Diflucan 3 days ago and I'm on Coumadin"]) == [["fluconazole", "warfarin"]])
        #expect(pairs(["I finished my Diflucan a month ago and I'm on Coumadin"]).isEmpty)
    }

    @Test func citalopramAboveTwentyMilligramsWithACYP2C19Inhibitor() {
        #expect(pairs(["celexa 40 mg and prilosec every morning"]) == [["citalopram", "omeprazole"]])
        #expect(pairs(["celexa 10 mg and prilosec every morning"]).isEmpty)
    }

    @Test func useSinceAStopIsOngoing() {
        let mentions = checker.mentions(in: "I came off sertraline 3 weeks ago and have been taking tramadol since")
        #expect(mentions.first { $0.name == "tramadol" }?.status == .taking)
        #expect(mentions.first { $0.name == "sertraline" }?.status == .stopped)
    }
    @Test func aProposalThatGaveWayToAnotherMedicineIsNotTaken() {
        #expect(pairs(["I take warfarin. The dentist wanted to give me metronidazole but I got amoxicillin in the end"]).isEmpty)
        #expect(pairs(["on lithium; the walk-in clinic suggested ibuprofen but switched me to acetaminophen"]).isEmpty)
        // Nothing given in its place: the proposal stands and is warned.
        #expect(pairs(["I take warfarin and the dentist wanted to give me metronidazole, so I started it today"]) == [["metronidazole", "warfarin"]])
    }

    @Test func aMedicineNamedAsAWarningOrNotTakenIsNotPaired() {
        #expect(pairs(["the pharmacist said erythromycin would interact with my simvastatin"]).isEmpty)
        #expect(pairs(["I take lithium. My leaflet lists naproxen as a risk but I'm not on it"]).isEmpty)
    }
    @Test func aPossessiveOfASpelledOutWordNamesThatPerson() {
        // "mum" is spelled "mom" by the abbreviations; "mum's" must be "mom's".
        #expect(pairs(["I take fluconazole and my mum's on warfarin"]).isEmpty)
        #expect(pairs(["my mum's on oxycodone and the doctor started diazepam for her back"]) == [["diazepam", "oxycodone"]])
    }

    @Test func aMedicineGivenToAnAnimalIsNotTheWriters() {
        #expect(pairs(["sertraline for me, and the vet gave our dog tramadol"]).isEmpty)
        #expect(pairs(["I take sertraline and the dog bit me so urgent care gave me tramadol"]) == [["sertraline", "tramadol"]])
    }

    @Test func onlyOnOneMedicineMeansTheOthersNamedAreNotTaken() {
        #expect(pairs(["the leaflet says warfarin and fluconazole clash, I'm only on warfarin"]).isEmpty)
    }

    @Test func anOfferOrAnAdOrAStartMonthsAwayIsNotTaken() {
        #expect(pairs(["I'm on Imdur and was offered Cialis at the clinic"]).isEmpty)
        #expect(pairs(["on lithium, saw the ad for Advil on the bus"]).isEmpty)
        #expect(pairs(["my doctor might start me on amiodarone next month, I'm on digoxin now"]).isEmpty)
        // A procedure planned for next week still counts.
        #expect(pairs(["they'll use methylene blue in my surgery next week", "I take Cymbalta"]) == [["duloxetine", "methylene blue"]])
    }

    @Test func kidneyHarmFromNSAIDsWithBloodPressureMedicinesAndWaterPills() {
        #expect(pairs(["lisinopril and hydrochlorothiazide, and ibuprofen 600 three times a day for my back"])
            .sorted { $0.joined() < $1.joined() } == [["hydrochlorothiazide", "ibuprofen"], ["ibuprofen", "lisinopril"]])
        // Low-dose aspirin with an ACE inhibitor is the usual heart regimen, not warned.
        #expect(pairs(["lisinopril 10 and aspirin 81 every morning"]).isEmpty)
    }

    @Test func tamoxifenWithAStrongCYP2D6Inhibitor() {
        #expect(pairs(["paxil for years", "tamoxifen since my surgery"]) == [["paroxetine", "tamoxifen"]])
    }
}
