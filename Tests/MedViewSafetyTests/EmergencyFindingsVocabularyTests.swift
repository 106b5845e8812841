import Testing
import MedViewSafety

/// Stop 18's findings, each stated as what a patient depends on: everyday words never veto an
/// emergency as "fiction", a lasting state's date does not date what follows it, and red flags
/// the rules did not know (envenomation, a seizure after a head injury, reduced fetal movements,
/// a person who only groans when shaken, a fast pulse with an infection) now alert, each with a
/// twin that must stay quiet.
@Suite struct EmergencyFindingsVocabularyTests {
    let rules = SharedDetectors.rulesOnly
    let detector = EmergencyDetector.shared

    // Filler words (a, the, my) are dropped from phrases, so "my book" once matched "book".
    @Test("everyday words that once read as a fiction frame no longer veto an emergency told with them", arguments: [
        "Trying to book the flu jab for all of us. Oh no, he's just gone stiff on the sofa and he's jerking and won't answer me",
        "Long story but we were at a party, now my lips are swollen and I'm wheezing, I think the satay had nuts",
        "Just need the script sorted for my cellulitis antibiotics. The red on my leg has spread past the line, I'm shaking uncontrollably and my heart is doing 130",
        "watching the new episode with dad and he suddenly collapsed and isn't breathing",
    ])
    func everydayWordsAreNoFrame(text: String) {
        #expect(detector.assess(text) != nil, "\(text)")
    }

    @Test("fiction told as fiction still gets no alert; a negated frame is none", arguments: [
        ("In my story the main character has a seizure on a train, how would the other passengers react?", false),
        ("For my novel: the character who got bitten by a rattlesnake, how fast would the venom act?", false),
        ("not writing a story this time, this is real: I took 30 of my pills about an hour ago", true),
    ])
    func fictionFrames(text: String, alerts: Bool) {
        #expect((detector.assess(text) != nil) == alerts, "\(text)")
    }

    @Test("a time told after a lasting state dates the state, not the signs after it", arguments: [
        ("c-section 1 week ago, fever 39 and the wound is hot and oozing", true),
        ("gave birth 5 days ago, now a really bad headache and blurry vision", true),
        ("Had my baby 8 weeks ago, heavy bleeding at the time needed a transfusion, but I feel recovered now. Can I start running?", false),
        ("I was in a car accident in 2010, lost a lot of blood and needed a transfusion. Can I donate blood now?", false),
    ])
    func datedStates(text: String, alerts: Bool) {
        #expect((detector.assess(text) != nil) == alerts, "\(text)")
    }

    @Test("a venomous bite or sting alerts as poisoning; an animal bitten or a question does not", arguments: [
        ("bitten by a snake on my ankle while hiking, it's swelling up fast", "poisoning"),
        ("my son got stung by a scorpion in the yard and he's crying and drooling", "poisoning"),
        ("our dog was bitten by a rattlesnake on the trail", nil),
        ("what should you do if a snake bites you on a hike?", nil),
    ])
    func envenomation(text: String, expected: String?) {
        #expect(rules.assess(text)?.category == expected, "\(text)")
    }

    @Test("a seizure since a head injury alerts even told in the past tense; a years-old one does not", arguments: [
        ("concussion from a fall this morning, then I had a fit after", true),
        ("hit his head on the trampoline and had a seizure afterwards", true),
        ("I had a concussion in 2015 and a seizure back then, do I need to tell the DVLA?", false),
    ])
    func seizureAfterHeadInjury(text: String, alerts: Bool) {
        #expect((rules.assess(text) != nil) == alerts, "\(text)")
    }

    @Test("fewer fetal movements alert; a baby moving lots does not", arguments: [
        ("32 weeks pregnant and the baby is kicking much less today than normal", true),
        ("baby kicks less than usual today, 36 weeks", true),
        ("30 weeks pregnant, baby kicking lots, just some heartburn at night", false),
    ])
    func fetalMovements(text: String, alerts: Bool) {
        #expect((rules.assess(text) != nil) == alerts, "\(text)")
    }

    @Test("a person who is hard to rouse or only groans when shaken alerts", arguments: [
        "my 90 year old mother is very hard to rouse today, only groans when I shake her",
        "grandad is difficult to rouse this afternoon",
    ])
    func hardToRouse(text: String) {
        #expect(rules.assess(text)?.category == "unconscious", "\(text)")
    }

    @Test("a heart rate counts as a sepsis sign only when it is high", arguments: [
        ("cellulitis on my arm is spreading and my heart rate is 135, I feel awful", true),
        ("cellulitis on my arm, pulse 72 this morning, feeling better on the antibiotics", false),
    ])
    func heartRates(text: String, alerts: Bool) {
        #expect((rules.assess(text)?.category == "sepsis") == alerts, "\(text)")
    }

    @Test("a child who swallowed a hydrocarbon or essential oil alerts as poisoning", arguments: [
        "my toddler drank some paraffin from the heater and is coughing",
        "my 2 year old swallowed eucalyptus oil",
    ])
    func hydrocarbons(text: String) {
        #expect(rules.assess(text)?.category == "poisoning", "\(text)")
    }

    @Test("a reason or a contrast ends a negation's reach; a plain negation still holds", arguments: [
        ("Didn't fancy dinner as my chest has been hurting for an hour now, heavy like a weight, and my jaw aches", true),
        ("I couldn't sleep because my chest was crushing and my left arm went numb", true),
        ("no chest pain and no jaw pain, just a bit tired after the gym", false),
    ])
    func negationScope(text: String, alerts: Bool) {
        #expect((detector.assess(text) != nil) == alerts, "\(text)")
    }

    @Test("'a bit' is no bite, and 'back in March' dates an event", arguments: [
        "my seizure meds make me a bit sleepy in the afternoons, is that common?",
        "Back in March my sugar went really low and my wife had to use the glucagon. It's been fine since the change",
    ])
    func everydayPhrasesStayQuiet(text: String) {
        #expect(detector.assess(text) == nil, "\(text)")
    }

    @Test("a bite with signs of infection still reads as an infection")
    func aBiteStillCounts() {
        #expect(rules.assess("the dog bit my hand two days ago, now it's red and spreading and I'm shaking uncontrollably with a fever")?.category == "sepsis")
    }

    @Test("a penetrating wound alerts as bleeding; a flu shot, a stubbed toe and a betrayal do not", arguments: [
        ("I've been stabbed in the stomach", true),
        ("my brother got shot in the leg, we're in the car", true),
        ("Had my flu shot today, arm is a bit sore", false),
        ("stubbed my toe on the bed, it's a bit bruised", false),
        ("my best friend stabbed me in the back at work today", false),
    ])
    func penetratingTrauma(text: String, alerts: Bool) {
        #expect((rules.assess(text)?.category == "bleeding") == alerts, "\(text)")
    }

    @Test("a frame beside an unrelated errand in a later sentence does not frame the emergency told after it")
    func aLaterFrameFramesOnlyItsSentence() {
        let text = "Can my appointment move? It clashes with my grandson's school play. Also since breakfast I've had this pressure in my chest going up into my jaw and I'm sweaty and breathless"
        #expect(detector.assess(text) != nil)
        #expect(detector.assess("For my novel: the character has crushing chest pain going into her jaw. How would she describe it?") == nil)
    }

    @Test("intent told in non-native or plain words alerts as suicide", arguments: [
        "I am so alone here, I think is better if I die, I have the knife with me now",
        "i want die, nobody care",
    ])
    func plainIntent(text: String) {
        #expect(rules.assess(text)?.category == "suicide", "\(text)")
    }
}
