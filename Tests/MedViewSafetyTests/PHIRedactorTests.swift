import Testing
import MedViewSafety

@Suite struct PHIRedactorTests {
    @Test(arguments: [
        ("write to jane.doe+med@example.co.uk please", "write to [email] please"),
        ("call me at (555) 123-4567", "call me at [phone]"),
        ("my cell is 555.123.4567 or +1 555 123 4567", "my cell is [phone] or [phone]"),
        ("SSN 123-45-6789", "SSN [ssn]"),
        ("ssn: 123456789", "ssn: [ssn]"),
        ("MRN 12345678", "MRN [mrn]"),
        ("medical record number: 445566", "medical record number: [mrn]"),
        ("record #A-7781 at the clinic", "record #[mrn] at the clinic"),
        ("DOB 03/14/1962", "DOB [dob]"),
        ("I was born on March 14, 1962", "I was born on [dob]"),
        ("seen on 2024-01-05 and 5 Jan 2023", "seen on [date] and [date]"),
        ("I live at 1234 Oak Street Apt 5B", "I live at [address]"),
        ("send it to 77 Sunset Blvd.", "send it to [address]"),
    ])
    func replacesIdentifiersWithTypedPlaceholders(input: String, expected: String) {
        #expect(PHIRedactor.redact(input) == expected)
    }

    @Test(arguments: [
        "I take 20 mg twice a day since 2019",
        "took 2 pills at 8 pm, my blood pressure was 140/90",
        "I walked 5 blocks down the road",
        "my record is good",
        "no identifiers here",
    ])
    func leavesOrdinaryHealthTextAlone(input: String) {
        #expect(PHIRedactor.redact(input) == input)
    }

    @Test func scrubsSeveralIdentifiersInOneText() {
        let text = "Patient Jane, DOB 1/2/1980, MRN 99887766, phone 555-222-3333, email j@x.org, lives at 9 Elm Ave."
        let out = PHIRedactor.redact(text)
        for secret in ["1/2/1980", "99887766", "555-222-3333", "j@x.org", "9 Elm Ave"] {
            #expect(!out.contains(secret))
        }
        #expect(out.contains("[dob]") && out.contains("[mrn]") && out.contains("[phone]") && out.contains("[email]") && out.contains("[address]"))
    }
}
