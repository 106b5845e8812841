import Testing
import MedViewSafety

/// Who and when an emergency word is about: a question about a condition in general, an animal
/// as the patient, an event already seen to by professionals. The false alerts of sets A–I came
/// mostly from these (docs/safety/fresh-j-first-run.md); each suppression has a twin that must
/// still alert, since a missed emergency is the worse failure.
@Suite struct EmergencyFramingTests {
    let rules = try! EmergencyDetector.rulesOnly()
    let detector = EmergencyDetector.shared

    @Test("a question about a condition in general gets no alert from the rules", arguments: [
        "Are strokes genetic?",
        "why do they call a heart attack a widowmaker?",
        "Can you get anaphylaxis from a food you have eaten for years?",
        "does a seizure always mean epilepsy?",
        "can people with type 1 diabetes get ketoacidosis?",
        "What counts as a high fever in a newborn?",
    ])
    func generalQuestions(text: String) {
        #expect(rules.assess(text) == nil)
    }

    @Test("a question about what is happening, a call for help or about what would be lethal still alerts", arguments: [
        ("is this a stroke, my face is drooping on one side", "stroke"),
        ("can someone help, my dad is not breathing", "breathing"),
        ("is it a heart attack if my chest is crushing and my left arm is numb", "cardiac"),
        ("how many of my sleeping pills would be enough to not wake up", "suicide"),
    ])
    func questionsThatStillAlert(text: String, expected: String) {
        #expect(detector.assess(text) != nil, "\(text)")
    }

    @Test("a condition asked about gets no alert from the rules", arguments: [
        "If my little boy ever has a seizure at school, should the teacher call 911 or me?",
        "Suppose I get stung on holiday and my lips swell up, would antihistamines be enough?",
    ])
    func conditionalQuestions(text: String) {
        #expect(rules.assess(text) == nil)
    }

    @Test("a condition with a sign happening now, or a sign told before the question, still alerts", arguments: [
        "if she is having a stroke right now what do I do, her face is drooping",
        "my husband collapsed and isn't breathing, if I start CPR should I stop to call 911",
        "if this is a heart attack should I call 911 my chest is crushing and my left arm is numb",
    ])
    func conditionsThatStillAlert(text: String) {
        #expect(detector.assess(text) != nil, "\(text)")
    }

    @Test("an animal as the patient gets no alert from the signal phrases", arguments: [
        "my rabbit is having a seizure on the rug, she's twitching, what do I do",
        "our horse got stung by wasps and his face is swelling",
    ])
    func animalPatients(text: String) {
        #expect(rules.assess(text) == nil)
    }

    @Test("an animal that is the cause, the owner's pronoun for a person, or an allergy still alerts", arguments: [
        "a dog bit my son and his arm won't stop bleeding",
        "I'm allergic to cats and my throat is closing up",
        "my grandson was playing with the puppy when he stopped breathing",
        "bitten by a snake on the trail, my leg is swelling fast and I feel faint",
    ])
    func animalsThatAreNotThePatient(text: String) {
        #expect(detector.assess(text) != nil, "\(text)")
    }

    @Test("an event already seen to by professionals gets no alert from the rules", arguments: [
        "my wife fainted at the supermarket on Friday, the paramedics checked her over and she has been fine since. why does that happen?",
        "we went to urgent care on Monday with my chest pain and they said it was muscular, what stretches help?",
    ])
    func alreadyAssessed(text: String) {
        #expect(rules.assess(text) == nil)
    }

    @Test("care that sends the patient on, or something new after the assessment, still alerts", arguments: [
        "crushing chest pain for an hour, the nurse checked me over and said to call 911",
        "the ER sent him home this morning, now his face is drooping and he can't talk",
        "my mum is very confused and breathing fast, the nurse said her blood pressure is low",
    ])
    func assessmentsThatStillAlert(text: String) {
        #expect(detector.assess(text) != nil, "\(text)")
    }
}
