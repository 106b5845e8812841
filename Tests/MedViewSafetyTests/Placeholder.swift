import Testing
import MedViewSafety

@Test func safetyModuleLoads() { #expect(MedViewSafety.version == "0") }
