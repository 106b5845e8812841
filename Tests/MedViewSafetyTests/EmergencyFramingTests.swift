import Testing
import MedViewSafety

/// Who and when an emergency word is about: a question about a condition in general, an animal
/// as the patient, an event already seen to by professionals. The false alerts of sets A–I came
/// mostly from these (docs/safety/fresh-j-first-run.md); each suppression has a twin that must
/// still alert, since a missed emergency is the worse failure.
@Suite struct EmergencyFramingTests {
    let rules = SharedDetectors.rulesOnly
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
    @Test("an event told with its outcome on an earlier day gets no alert from the rules", arguments: [
        "My son choked on a sweet at lunch yesterday, he coughed it out himself and he has been fine since.",
        "Went to the ER on Sunday with chest pain, bloods and ECG were normal, it turned out to be reflux.",
        "The paramedics came for my mum on Thursday, it was a TIA, she stayed in overnight and came home today. What should she eat?",
        "had a stomach bug over the weekend, threw up for a day, back to normal now",
    ])
    func settledEarlier(text: String) {
        #expect(rules.assess(text) == nil, "\(text)")
    }

    @Test("an outcome told of something still going on, or something new after the outcome, still alerts", arguments: [
        "since yesterday I've had crushing chest pain and my left arm is numb, no problems since I took an aspirin",
        "my face drooped for ten minutes this morning, she has been fine since",
        "he choked on Friday and has been fine since, but now he can't breathe and his lips are blue",
    ])
    func settledThatStillAlerts(text: String) {
        #expect(detector.assess(text) != nil, "\(text)")
    }

    @Test("a plainly hypothetical condition gets no alert, whatever else sounds recent", arguments: [
        "Should we keep a bottle of aspirin at home in case my wife has a heart attack one day?",
        "If I ever start feeling suicidal again, which number do I ring? I'm doing fine at the moment.",
        "god forbid my dad has a stroke again, what should I watch for?",
    ])
    func strongHypotheticals(text: String) {
        #expect(rules.assess(text) == nil, "\(text)")
    }

    @Test("fiction about a character gets no alert, the writer's own thoughts still do", arguments: [
        ("working on a short story in which the main character attempts suicide, how do I write it safely?", false),
        ("I'm writing a crime novel where the victim is poisoned with arsenic, what would she feel?", false),
        ("watched a medical drama last night where a guy bled out in a minute, is that realistic?", false),
        ("it's for my short story but honestly I want to kill myself tonight", true),
    ])
    func fictionCharacters(text: String, alerts: Bool) {
        #expect((detector.assess(text) != nil) == alerts, "\(text)")
    }

    @Test("hyperbole about prices, exams and boredom gets no alert; the same words about a person still do", arguments: [
        ("the new price of my inhaler nearly gave me a stroke", false),
        ("I about passed out when I saw the bill from the dentist", false),
        ("I blacked out on question 4 of the chemistry exam", false),
        ("my shoulders keep seizing up at my desk, would a massage help?", false),
        ("my dad passed out at the table and won't wake up", true),
        ("my son is having a seizure and it won't stop", true),
    ])
    func hyperbole(text: String, alerts: Bool) {
        #expect((detector.assess(text) != nil) == alerts, "\(text)")
    }
    @Test("a sign negated inside a list of what is fine gets no alert from the rules", arguments: [
        "30 weeks pregnant, baby kicking lots, no bleeding, just some heartburn at night",
        "My mum's speech is fine and her face isn't drooping, she's just worn out after the trip",
        // Any one-word negation cue of emergency.json negates the next part, not only "no"/"not".
        "30 weeks pregnant, baby kicking lots, denies bleeding, just some heartburn at night",
    ])
    func negatedInsideAList(text: String) {
        #expect(rules.assess(text) == nil, "\(text)")
    }

    @Test("the same signs present still alert", arguments: [
        "30 weeks pregnant and bleeding a lot, soaking a pad every hour",
        "my mum's face is drooping on one side and her speech is slurred",
    ])
    func presentSignsStillAlert(text: String) {
        #expect(detector.assess(text) != nil, "\(text)")
    }
    @Test("an account password is not a suicide warning sign; passwords handed over with a plan still are", arguments: [
        ("how do I change my password", false),
        ("forgot my password for the app again", false),
        ("I wrote down all my passwords for you, I won't need them after tonight", true),
    ])
    func passwords(text: String, alerts: Bool) {
        #expect((detector.assess(text) != nil) == alerts, "\(text)")
    }
}
