import Foundation
import Testing
@testable import MedViewSafety

/// One example per red-flag rule of `findings.json`, each checked with generated variants
/// (case, punctuation, a misspelling, clause order, texting style), and the context rules that
/// must keep each category quiet (negation, history, hypothetical, fiction).
@Suite struct FindingsRuleTests {
    let detector = EmergencyDetector.shared

    /// Rule id → an example in a patient's words (written for these tests, not taken from any
    /// evaluation set) and the category the alert must carry.
    static let examples: [String: (text: String, category: String)] = [
        "aha-chest-plus": ("there is a heavy pressure in my chest, I feel sweaty and sick", "cardiac"),
        "aha-upper-body": ("my jaw and left arm ache, I am clammy and short of breath", "cardiac"),
        "aha-heartburn-plus": ("this heartburn is not normal, I am drenched in sweat and lightheaded", "cardiac"),
        "befast-one": ("my mother's smile is crooked, her face droops on one side", "stroke"),
        "befast-eyes-balance": ("I suddenly lost vision in my right eye", "stroke"),
        "befast-eyes-and-balance": ("my husband is seeing double, he keeps losing his balance", "stroke"),
        "infant-fever": ("my 6 week old baby has a temperature of 100.8", "pediatric"),
        "child-red-flags": ("my toddler is floppy, he has a fever", "pediatric"),
        "infant-dehydration": ("my baby has had no wet diapers today, she is not feeding", "pediatric"),
        "child-ingestion": ("my toddler swallowed a button battery", "poisoning"),
        "child-seizure": ("my 2 year old had a seizure, he has a fever", "pediatric"),
        "child-dose-error": ("my 3 year old got a double dose of his medicine", "poisoning"),
        "poisoning-mixed-depressants": ("my roommate had a lot of vodka with her xanax, now she is unresponsive", "poisoning"),
        "sepsis": ("my dad has pneumonia, now he is confused and breathing fast", "sepsis"),
        "hypo-severe": ("my blood sugar is 41", "diabetic"),
        "hypo-symptomatic": ("my sugar is low, I am shaky and confused", "diabetic"),
        "hyper-dka": ("my daughter has type 1 diabetes, her ketones are high and she keeps vomiting", "diabetic"),
        "hyper-extreme": ("my glucose meter says 560", "diabetic"),
        "diabetic-symptomatic": ("my grandma is diabetic, she is sweaty and acting drunk", "diabetic"),
        "anaphylaxis-airway": ("I ate shrimp, my lips and tongue are swelling", "anaphylaxis"),
        "anaphylaxis-two-systems": ("after the bee sting I have hives all over and feel dizzy", "anaphylaxis"),
        "breathing-severe": ("I am so short of breath, my lips are turning blue", "breathing"),
        "choking": ("my husband is choking, he cannot cough or talk", "breathing"),
        "bleeding-heavy": ("the cut on my leg is bleeding through every towel", "bleeding"),
        "bleeding-internal": ("my poop is black like tar", "bleeding"),
        "bleeding-anticoagulated": ("my gums are bleeding, I feel faint and dizzy", "bleeding"),
        "poisoning-ingestion": ("I swallowed a whole bottle of sleeping pills", "poisoning"),
        "penetrating-trauma": ("my neighbour has been stabbed in the chest", "bleeding"),
        "envenomation": ("bitten by a copperhead while gardening, the bite is swelling and burning", "poisoning"),
        "poisoning-co": ("the carbon monoxide alarm is beeping, we all have headaches", "poisoning"),
        "suicide-intent": ("honestly I want to end my life", "suicide"),
        "suicide-farewell": ("I wrote goodbye letters to everyone, I have made my peace", "suicide"),
        "seizure": ("my wife is convulsing on the floor, she is not responding", "seizure"),
        "unresponsive": ("I found my grandpa on the floor, he is unresponsive", "unconscious"),
        "head-injury": ("my son hit his head at football practice, now he keeps throwing up", "head_injury"),
        "pregnancy": ("I am 33 weeks pregnant, I have a severe headache and blurry vision", "pregnancy"),
        // Added on branch safety2.
        "neutropenic-fever": ("my wife is on chemotherapy and tonight she has a temperature of 101.2", "sepsis"),
        "breathing-rescue-fails": ("my asthma is bad and the nebulizer is doing nothing, I can only say a few words", "breathing"),
        "breathing-smoke": ("there was a house fire next door, my uncle breathed in smoke and is wheezing with a hoarse voice", "breathing"),
        "breathing-lung-fluid": ("I keep coughing up pink frothy spit and my chest is gurgling", "breathing"),
        "breathing-pe": ("after a long flight my calf is swollen and now I am short of breath", "breathing"),
        "aha-nitro-fails": ("I took my nitroglycerin five minutes ago and the pain is still there", "cardiac"),
        "aha-same-as-before": ("I had a heart attack in 2021 and this feels just like it, a tightness and cold sweat", "cardiac"),
        "seizure-unaware": ("my brother is twitching on one side and he is not answering me", "seizure"),
        "opioid-toxidrome": ("my roommate is really hard to wake and her breathing is shallow", "unconscious"),
        "adult-dose-error": ("my grandma doubled her digoxin by accident this week", "poisoning"),
        "acetaminophen-excess": ("I have been taking 12 extra strength tylenol a day for my tooth and now I feel nauseous", "poisoning"),
        "poisoning-contact": ("weed killer splashed all over me while spraying, now I am sweating and drooling", "poisoning"),
        "child-foreign-body": ("my daughter who is 4 swallowed a magnet and now she is drooling", "pediatric"),
        "child-burn": ("my 10 month old pulled a pot of boiling water onto his legs", "pediatric"),
        "sglt2-euglycemic-dka": ("I take farxiga and since this morning I am vomiting with belly pain and fast breathing", "diabetic"),
        "bleeding-heavy-period": ("I am soaking a super pad every hour and I feel faint", "bleeding"),
        "bleeding-post-op": ("my son had his tonsillectomy last week and now there is fresh blood in his mouth, he looks faint", "bleeding"),
    ]

    @Test func everyRuleHasAnExample() throws {
        let data = try SafetyData.decode(FindingsData.self, from: "findings.json")
        for r in data.rules {
            #expect(Self.examples[r.id] != nil, "rule \(r.id) has no example")
        }
    }

    @Test(arguments: examples.keys.sorted())
    func eachRuleRecognisesItsFindingInEveryVariant(rule: String) {
        let (text, category) = Self.examples[rule]!
        #expect(detector.layers(text).rule == rule, "\(text) → rule \(detector.layers(text).rule ?? "none")")
        for variant in Self.variants(of: text) {
            #expect(detector.assess(variant)?.category == category, "\(rule): \(variant) → \(detector.assess(variant)?.category ?? "none")")
        }
    }

    /// Case, punctuation, a misspelling, clause order and texting style.
    static func variants(of text: String) -> [String] {
        var out = [text, text.lowercased(), text.uppercased(), text + "!!", text.replacingOccurrences(of: ",", with: " ..."),
                   text.filter { !",.'".contains($0) }]
        // One misspelling: the longest word of 7+ letters loses its third letter.
        let words = text.split(separator: " ").map(String.init)
        if let long = words.filter({ $0.count >= 7 && $0.allSatisfy(\.isLetter) }).max(by: { $0.count < $1.count }) {
            var c = Array(long)
            c.remove(at: 2)
            out.append(text.replacingOccurrences(of: long, with: String(c)))
        }
        // Clause order: "A, B" → "B, A".
        let parts = text.components(separatedBy: ", ")
        if parts.count == 2 { out.append(parts[1] + ", " + parts[0]) }
        // Texting style.
        out.append(text.lowercased().replacingOccurrences(of: "i am ", with: "im ").replacingOccurrences(of: "cannot", with: "cant")
            .replacingOccurrences(of: " you ", with: " u ").replacingOccurrences(of: "'", with: ""))
        return out
    }

    /// The context rules that keep each kind of finding quiet.
    @Test(arguments: [
        "no chest pressure and no sweating, just a stuffy nose",
        "my dad had a stroke in 2019, what exercises help his recovery?",
        "if my 6 week old baby gets a fever, what should I do?",
        "in my novel the main character has crushing chest pain and sweats",
        "what are the warning signs of sepsis?",
        "my blood sugar was 180 after dinner, is that high?",
        "my chest hurts when I cough from this cold",
        "my toddler almost swallowed a coin but I took it away before he could",
        "I had a seizure when I was 12, can I drive now?",
        "I'm so hungry I could die",
        "the cut is bleeding a little, I put a bandaid on it",
        "I gave birth three years ago and sometimes get headaches",
        "my diabetic mom's sugar is low, 65, she's fine and eating a snack",
        "I accidentally took my vitamin D twice today",
    ])
    func contextKeepsOrdinaryMessagesQuiet(text: String) {
        #expect(detector.assess(text) == nil, "\(text) → \(detector.assess(text)?.category ?? "")")
    }

    @Test func aTransientStrokeStillAlerts() {
        // BE-FAST: symptoms that went away can be a transient ischemic attack.
        #expect(detector.assess("for ten minutes my right hand went numb and weak and my words came out wrong, it went away now")?.category == "stroke")
        // A chest pain that went away is not treated the same way (existing guarantee).
        #expect(detector.assess("the chest pain went away") == nil)
    }

    @Test func aChildsEmergencyIsWordedForTheParent() {
        let a = detector.assess("my 8 month old has a fever of 104 and is really lethargic")
        #expect(a?.category == "pediatric")
        #expect(a?.isBystander == true)
    }

    @Test func chestPressureWithArmTinglingIsCardiacButSlurredSpeechKeepsAStroke() {
        #expect(detector.assess("feels like someone is sitting on my chest and my left arm is tingling")?.category == "cardiac")
        #expect(detector.assess("chest pain, my left arm went numb and my speech is slurred")?.category == "stroke")
    }
}
