import Testing
import Foundation
@testable import MedViewSafety

@Suite struct EmergencyDetectorTests {
    let detector = EmergencyDetector.shared

    func category(_ text: String) -> String? { detector.assess(text)?.category }

    @Test(arguments: [
        ("I have crushing chest pain going down my left arm", "cardiac"),
        ("my face is drooping and my speech is slurred", "stroke"),
        ("I can't breathe", "breathing"),
        ("it won't stop bleeding", "bleeding"),
        ("my throat is closing up after eating peanuts", "anaphylaxis"),
        ("my toddler drank bleach", "poisoning"),
        ("I want to kill myself", "suicide"),
        ("my son is having a seizure", "seizure"),
        ("my husband collapsed and is unresponsive", "unconscious"),
        ("he hit his head and keeps throwing up", "head_injury"),
        ("I'm 30 weeks pregnant and bleeding heavily", "pregnancy"),
    ])
    func detectsEachCategory(text: String, expected: String) {
        #expect(category(text) == expected)
    }

    @Test(arguments: [
        "no chest pain", "I'm not having trouble breathing", "I don't have chest pain, just a cough",
        "no trouble breathing and no swelling", "the chest pain went away", "I'm not suicidal",
    ])
    func negationIsNotAnEmergency(text: String) {
        #expect(detector.assess(text) == nil)
    }

    @Test func negationEndsAtANewClause() {
        #expect(category("I don't have a fever, I have crushing chest pain") == "cardiac")
        #expect(category("no fever but my face is drooping") == "stroke")
    }

    /// Gaps the blind set's first run found (docs/safety/blind-first-run.txt), one case each.
    @Test(arguments: [
        ("I won't be a burden to anyone much longer", "suicide"),
        ("I've been giving away my things. I won't need them where I'm going.", "suicide"),
        ("I don't see a way out. I've been looking up how many pills it would take", "suicide"),
        ("I stopped taking my heart pills on purpose so it comes sooner", "suicide"),
        ("my toddler fell down the stairs and now she's really sleepy and hard to keep awake", "head_injury"),
        ("fell off a ladder and hit my head, one of my pupils is bigger than the other", "head_injury"),
        ("haven't felt the baby move at all today, I'm 36 weeks", "pregnancy"),
        ("pregnet 34 wks, face and hands swollen, blurry vision and a pounding headache", "pregnancy"),
        ("my 2 year old swallowed some of grandma's pills", "poisoning"),
        ("toddler drank some dishwasher detergent", "poisoning"),
        ("asthma attack rn and my rescue inhaler is empty, chest so tight i cant talk", "breathing"),
        ("the skin between her ribs is sucking in with every breath", "breathing"),
        ("I can't rouse her at all and her breathing sounds like snoring", "unconscious"),
        ("I've had this heavy pressure in my chest since I got up, my left arm is numb now", "cardiac"),
    ])
    func blindSetGapsAreClosed(text: String, expected: String) {
        #expect(category(text) == expected)
    }

    @Test(arguments: [
        "I've had a bad headache for 3 weeks", "giving away my old clothes to charity", "I have asthma, how do I use my inhaler",
        "the baby is moving a lot today, I'm 30 weeks", "my son fell off his bike and scraped his knee",
    ])
    func blindSetLookAlikesStayQuiet(text: String) {
        #expect(detector.assess(text) == nil)
    }

    @Test func chestPainWithANumbArmIsCardiacButFaceOrSpeechSignsStillMeanStroke() throws {
        let cardiac = try #require(detector.assess("crushing chest pain and my left arm is numb"))
        #expect(cardiac.category == "cardiac")
        #expect(cardiac.categories.contains("stroke"), "the arm sign is still listed")
        #expect(category("my chest hurts and my left arm feels weak") == "cardiac")
        #expect(category("my left arm is numb and my face is drooping") == "stroke")
        #expect(category("chest pain, my left arm went numb and my speech is slurred") == "stroke")
        #expect(category("my left arm went numb all of a sudden") == "stroke")
    }

    @Test(arguments: [
        "I had a heart attack in 2010", "last year I overdosed", "I had a seizure when I was a kid",
        "I used to cut myself as a teenager", "history of anaphylaxis to peanuts",
    ])
    func pastHistoryIsNotAnEmergency(text: String) {
        #expect(detector.assess(text) == nil)
    }

    @Test func recentOrReturningEventsStillCount() {
        #expect(category("I just had a seizure") == "seizure")
        #expect(category("I tried to kill myself last year and I'm feeling that way again") == "suicide")
        #expect(category("I had a heart attack in 2015 and now I have the same chest pain again") == "cardiac")
    }

    @Test(arguments: [
        "what are the signs of a stroke?", "what are the symptoms of a heart attack in women",
        "what should I do if someone is having a seizure?", "how do I know if I'm having a heart attack?",
        "what does anaphylaxis mean",
    ])
    func informationalQuestionsAreNotEmergencies(text: String) {
        #expect(detector.assess(text) == nil)
    }

    @Test func aQuestionWithACurrentEmergencyStillCounts() {
        #expect(category("What are the signs of a stroke? My dad's face is drooping right now") == "stroke")
    }

    @Test(arguments: [
        "this headache is killing me", "I was dying laughing", "I'm dying to see it", "heart attack prices at the pharmacy",
        "the bill nearly gave me a heart attack", "lol I can't breathe that video", "that was a stroke of luck",
    ])
    func idiomsAreNotEmergencies(text: String) {
        #expect(detector.assess(text) == nil)
    }

    @Test func bystanderGetsBystanderWordingWithTheRightPronoun() throws {
        let dad = try #require(detector.assess("my dad's face is drooping"))
        #expect(dad.category == "stroke")
        #expect(dad.isBystander)
        #expect(dad.guidance.contains("Call 911 for him now"))
        let wife = try #require(detector.assess("my wife can't breathe"))
        #expect(wife.guidance.contains("for her"))
        let kid = try #require(detector.assess("my kid swallowed a button battery"))
        #expect(kid.guidance.contains("them"))
        let me = try #require(detector.assess("my face is drooping"))
        #expect(!me.isBystander)
        #expect(!me.guidance.contains("{"))
    }

    /// Every bystander text in the data (each category's and each variant's), worded for each
    /// gender, reads as Foundation's replacement of the three placeholders gives it, and has no
    /// placeholder left; text in braces that is not a placeholder is kept.
    @Test func bystanderTextsAreWordedAsTheReplacementGivesThem() throws {
        let data = try SafetyData.decode(EmergencyData.self, from: "emergency.json")
        var templates: [String] = []
        for c in data.categories {
            templates.append(c.bystander)
            for v in (c.variants ?? [:]).values { templates.append(v.bystander) }
        }
        templates += ["{them}{their}{themself}", "{ {them} }", "{unknown} and {them", "tail {", "no placeholder", "", "é {them} ü"]
        var placeholders = 0
        for template in templates {
            for gender in [Gender.male, .female, .neutral] {
                let replaced = template
                    .replacingOccurrences(of: "{them}", with: gender.object)
                    .replacingOccurrences(of: "{their}", with: gender.possessive)
                    .replacingOccurrences(of: "{themself}", with: gender.reflexive)
                #expect(EmergencyDetector.fill(template, gender) == replaced, "\(template) for \(gender)")
                if replaced != template { placeholders += 1 }
            }
        }
        #expect(placeholders > 3 * data.categories.count / 2)
    }

    @Test(arguments: [
        ("chest pian wont go away", "cardiac"), ("im haveing a strok", "stroke"),
        ("my son is having a siezure", "seizure"), ("my friend is unconcious", "unconscious"),
    ])
    func misspellingsAreTolerated(text: String, expected: String) {
        let a = detector.assess(text)
        #expect(a != nil)
        #expect(a?.categories.contains(expected) == true)
    }

    @Test func nearCollisionsAreNotCorrected() {
        #expect(detector.assess("I was cooking dinner") == nil)
        #expect(detector.assess("what are you doing") == nil)
        #expect(detector.assess("my clothes are drying") == nil)
    }

    @Test(arguments: ["heeelp i caaant breathe", "cant breath rn", "i cnt catch my breath"])
    func textingStyleIsUnderstood(text: String) {
        #expect(category(text) == "breathing")
    }

    @Test(arguments: [
        "I want to go to sleep and never wake up", "everyone would be better off without me", "kms",
        "im going to unalive myself", "thinking about sewerslide", "there's no reason for me to live anymore",
    ])
    func codedSuicidalLanguageIsDetected(text: String) {
        #expect(category(text) == "suicide")
    }

    @Test func suicideActionsAre988CallAndTextAnd911() throws {
        let a = try #require(detector.assess("I want to end my life"))
        #expect(a.actions.map(\.href) == ["tel:988", "sms:988", "tel:911"])
    }

    @Test func poisoningActionsIncludePoisonHelp() throws {
        let a = try #require(detector.assess("I took too many pills"))
        #expect(a.actions.first?.href == "tel:18002221222")
        #expect(a.actions.contains { $0.href == "tel:911" })
    }

    @Test func mixedEmergenciesMergeTheirActions() throws {
        let a = try #require(detector.assess("I took all my pills because I want to die"))
        #expect(a.category == "suicide")
        #expect(a.categories.contains("poisoning"))
        #expect(a.actions.contains { $0.href == "tel:18002221222" })
    }

    @Test func modelNoteRepeatsTheGuidanceAndAsksForSupport() throws {
        let a = try #require(detector.assess("I think I'm having a stroke"))
        #expect(a.modelNote.contains(a.guidance))
        #expect(a.modelNote.contains("never contradict"))
    }

    @Test func urgentSignalsAreMarkedUrgent() throws {
        #expect(detector.assess("I'm short of breath")?.severity == "urgent")
        #expect(detector.assess("I can't breathe")?.severity == "emergency")
    }

    @Test func ordinaryMessagesAreNotEmergencies() {
        #expect(detector.assess("") == nil)
        #expect(detector.assess("I'm on warfarin, can I take ibuprofen?") == nil)
        #expect(detector.assess("I'm pregnant, is it safe to eat sushi?") == nil)
    }
}
