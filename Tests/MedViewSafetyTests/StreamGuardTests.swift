import Testing
import MedViewSafety

@Suite struct StreamGuardTests {
    /// Feeds `pieces` and returns everything released and the first violation.
    func run(_ pieces: [String], finish: Bool = true) -> (released: String, violation: OutputViolation?) {
        var guardian = StreamGuard()
        var released = ""
        for p in pieces {
            let out = guardian.append(p)
            released += out.release
            if let v = out.violation { return (released, v) }
        }
        if finish {
            let out = guardian.finish()
            released += out.release
            return (released, out.violation)
        }
        return (released, nil)
    }

    @Test func aPhraseSplitAcrossTwoDeltasIsCaughtBeforeAnyOfItIsReleased() {
        var guardian = StreamGuard()
        let first = guardian.append("For a bad headache you could take 20 tab")
        #expect(first.violation == nil)
        #expect(first.release == "For a bad headache you could ")
        let second = guardian.append("lets at once.")
        #expect(second.violation?.rule == "dangerous_dose")
        #expect(second.release.isEmpty)
        #expect(guardian.isStopped)
        #expect(guardian.append(" More text").release.isEmpty)
    }

    @Test func aPhraseSplitInsideAWordIsCaught() {
        let r = run(["The lethal do", "se of that is"])
        #expect(r.violation?.rule == "self_harm_method")
        #expect(!r.released.contains("lethal"))
    }

    @Test func cleanTextIsReleasedPromptly() {
        var guardian = StreamGuard()
        #expect(guardian.append("Drink plenty of water and ").release == "Drink plenty of water and ")
        // The last word may still grow, so it waits for the next delta.
        #expect(guardian.append("rest").release == "")
        #expect(guardian.append(" today.").release == "rest today.")
        #expect(guardian.finish() == GuardOutput(release: ""))
    }

    @Test func releasedTextIsExactlyTheInputWhenClean() {
        let text = "Ibuprofen can upset your stomach; take it with food. Ask your pharmacist about 2 tablets every 6 hours, café-style 😀 notes, and St. John's wort."
        var pieces: [String] = []
        var rest = Substring(text)
        var size = 1
        while !rest.isEmpty {
            pieces.append(String(rest.prefix(size)))
            rest = rest.dropFirst(size)
            size = size % 7 + 1
        }
        let r = run(pieces)
        #expect(r.violation == nil)
        #expect(r.released == text)
    }

    @Test(arguments: [
        ("You should stop taking your lisinopril right away.", "stop_medication"),
        ("Based on your symptoms, you definitely have diabetes.", "diagnosis_claim"),
        ("Take 20 tablets now.", "dangerous_dose"),
        ("You can take 1500 mg of Tylenol at once.", "dangerous_dose"),
        ("Just double your dose tonight.", "dangerous_dose"),
        ("The most painless way to die is", "self_harm_method"),
    ])
    func eachRuleIsEnforced(text: String, rule: String) {
        #expect(run([text]).violation?.rule == rule)
    }

    @Test(arguments: [
        "Don't stop taking your lisinopril without talking to your doctor.",
        "If you develop a rash, stop taking it and call your doctor.",
        "Do not take more than 8 tablets in 24 hours.",
        "Take 6 tablets a day, spread out.",
        "If you miss a dose, do not double your dose.",
        "If you have diabetes, check your feet daily.",
        "I can't share information about lethal doses. Please call or text 988.",
        "Adults can take 1000 mg of acetaminophen every 6 hours.",
    ])
    func safeAdviceIsNotStopped(text: String) {
        let r = run([text])
        #expect(r.violation == nil)
        #expect(r.released == text)
    }

    @Test func aViolationCarriesItsReplacementMessage() throws {
        let v = try #require(run(["Here is how to kill yourself with"]).violation)
        #expect(v.replacement.contains("988"))
    }

    @Test func heldClauseIsDecidedAtFinish() {
        var guardian = StreamGuard()
        let out = guardian.append("You can stop taking it")
        #expect(out.violation == nil)
        #expect(!out.release.contains("stop"))
        #expect(guardian.finish().violation?.rule == "stop_medication")
    }
}
