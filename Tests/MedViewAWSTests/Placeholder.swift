import Testing
import MedViewAWS

@Test func awsModuleLoads() { #expect(MedViewAWS.version == "0") }
