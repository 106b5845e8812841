import Foundation
import Testing
import MedViewSafety

/// The US brand names taken from the FDA NDC Directory (docs/safety/knowledge/ndc_brands.tsv,
/// derived by ndc_brands.py) are read as their generics, so a patient who names a less famous
/// brand ("Depacon", "Monoket", "Trokendi XR") is checked like one who names the generic.
@Suite struct NDCBrandNameTests {
    static let table = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/safety/knowledge/ndc_brands.tsv")

    @Test("every brand of the NDC table is read as its generic in a sentence")
    func everyBrandIsReadAsItsGeneric() throws {
        let lines = try String(contentsOf: Self.table, encoding: .utf8).split(separator: "\n")
        #expect(lines.count > 300)
        let checker = MedicationChecker.shared
        var misread: [String] = []
        for line in lines {
            let fields = line.split(separator: "\t").map(String.init)
            try #require(fields.count == 3)
            let (brand, generic) = (fields[0], fields[1])
            let names = checker.mentions(in: "I take \(brand) every day").map(\.name)
            if !names.contains(generic) { misread.append("\(brand) -> \(names) (expected \(generic))") }
        }
        #expect(misread.isEmpty, "\(misread.prefix(20))")
    }

    @Test("a brand only the NDC table knows still warns with its interacting partner")
    func anNDCBrandWarns() {
        var context = MedicationContext()
        let warnings = MedicationChecker.shared.check("I take Depacon and lamotrigine", context: &context)
        #expect(warnings.map(\.drugs) == [["lamotrigine", "valproate"]])
    }
}
