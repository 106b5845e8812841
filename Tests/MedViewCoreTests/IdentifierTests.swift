import MedViewCore
import Testing

@Suite struct IdentifierTests {
    @Test func idsCarryTwentySixRandomCharactersEveryPositionUsingTheWholeAlphabet() {
        let ids = (0..<2000).map { _ in Identifier.make("s") }
        #expect(Set(ids).count == ids.count)
        let alphabet = Set("0123456789abcdefghjkmnpqrstvwxyz")
        var seen = [Set<Character>](repeating: [], count: 26)
        for id in ids {
            #expect(id.hasPrefix("s_") && id.count == 28)
            for (i, ch) in id.dropFirst(2).enumerated() {
                #expect(alphabet.contains(ch))
                seen[i].insert(ch)
            }
        }
        // Each position is uniform over 32 characters: 2000 draws miss one with odds below 1e-26.
        #expect(seen.allSatisfy { $0.count == 32 }, "\(seen.map(\.count))")
    }
}
