import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a GGUF file could not be read. Never contains file contents beyond names and numbers.
public enum GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be opened or mapped.
    case cannotOpen(path: String, errno: Int32)
    /// The first four bytes are not `GGUF`.
    case badMagic
    /// A GGUF version this reader does not read (it reads 2 and 3).
    case unsupportedVersion(UInt32)
    /// The file ends before a field that starts at `offset` and needs `needed` bytes.
    case truncated(offset: Int, needed: Int)
    /// A metadata value type id that the format does not define.
    case badValueType(UInt32)
    /// A string is not valid UTF-8.
    case badString(offset: Int)
    /// A count or length that cannot fit in the file.
    case implausibleCount(field: String, count: UInt64)
    /// `general.alignment` is zero, not a power of two, or not an unsigned 32-bit integer.
    case badAlignment
    /// A tensor with a ggml type id this reader does not know.
    case unsupportedTensorType(name: String, type: UInt32)
    /// A tensor's shape is invalid (no dimensions, more than four, a zero, or a row that is not whole blocks).
    case badShape(name: String)
    /// A tensor's data lies outside the file or is not aligned.
    case tensorOutOfRange(name: String)
    /// Two tensors share a name.
    case duplicateTensor(name: String)
    /// A metadata key or tensor the model needs is missing or has the wrong type.
    case missing(String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, code): "cannot open GGUF file \(path) (errno \(code))"
        case .badMagic: "not a GGUF file (bad magic)"
        case let .unsupportedVersion(v): "unsupported GGUF version \(v)"
        case let .truncated(offset, needed): "GGUF file truncated: \(needed) bytes needed at offset \(offset)"
        case let .badValueType(t): "bad GGUF metadata value type \(t)"
        case let .badString(offset): "GGUF string at offset \(offset) is not UTF-8"
        case let .implausibleCount(field, count): "GGUF \(field) count \(count) does not fit in the file"
        case .badAlignment: "GGUF general.alignment must be a power of two"
        case let .unsupportedTensorType(name, type): "tensor \(name) has unsupported ggml type \(type)"
        case let .badShape(name): "tensor \(name) has an invalid shape"
        case let .tensorOutOfRange(name): "tensor \(name) data lies outside the file or is misaligned"
        case let .duplicateTensor(name): "tensor \(name) appears twice"
        case let .missing(what): "GGUF file lacks \(what)"
        }
    }
}

/// A GGUF metadata value.
public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// An array: the element type id and the elements.
    case array(elementType: UInt32, [GGUFValue])

    /// The value as an integer, if it is one of the integer types (or a bool).
    public var int: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): v <= UInt64(Int.max) ? Int(v) : nil
        case let .int64(v): Int(v)
        case let .bool(v): v ? 1 : 0
        default: nil
        }
    }

    /// The value as a floating-point number, if it is numeric.
    public var double: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: int.map(Double.init)
        }
    }

    /// The value as a string, if it is one.
    public var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    /// The elements, if the value is an array.
    public var array: [GGUFValue]? {
        if case let .array(_, values) = self { return values }
        return nil
    }
}

/// The ggml tensor types this package knows the storage layout of.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    /// Weights per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .i8, .i16, .i32, .i64, .f64, .bf16: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1: 32
        case .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .q8_k: 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: 4
        case .f16, .i16, .bf16: 2
        case .i8: 1
        case .i64, .f64: 8
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q8_0: 34
        case .q8_1: 36
        case .q2_k: 84
        case .q3_k: 110
        case .q4_k: 144
        case .q5_k: 176
        case .q6_k: 210
        case .q8_k: 292
        }
    }
}

/// Where one tensor lives in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    /// Dimensions, innermost first (`dimensions[0]` is the row length).
    public var dimensions: [Int]
    public var type: GGMLType
    /// Offset from the start of the data section.
    public var offset: Int
    /// Size of the tensor's data in bytes.
    public var byteCount: Int

    /// Number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Length of one row (the innermost dimension).
    public var rowLength: Int { dimensions[0] }
    /// Number of rows (the product of the outer dimensions).
    public var rowCount: Int { elementCount / dimensions[0] }
}

/// A read-only memory mapping of a whole file; unmapped when released.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int

    init(path: String) throws(GGUFError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        let size = Int(info.st_size)
        guard size > 0 else { throw .truncated(offset: 0, needed: 4) }
        let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let pointer, pointer != MAP_FAILED else { throw .cannotOpen(path: path, errno: errno) }
        base = UnsafeRawPointer(pointer)
        count = size
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), count)
    }
}

/// A GGUF file (version 2 or 3), memory-mapped: metadata and tensor infos are parsed at open, the
/// tensor data is read in place and never copied.
///
/// Every length, count and offset is checked against the file size, so a truncated or corrupt
/// file gives a ``GGUFError`` rather than a crash.
public final class GGUFFile: Sendable {
    /// The file's GGUF version.
    public let version: UInt32
    /// All metadata, by key.
    public let metadata: [String: GGUFValue]
    /// Tensor infos in file order.
    public let tensorInfos: [GGUFTensorInfo]
    /// Tensor infos by name.
    public let tensors: [String: GGUFTensorInfo]
    /// The data section's alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// Where the tensor data section starts, from the start of the file.
    public let dataOffset: Int
    /// The file size in bytes.
    public var fileSize: Int { mapping.count }
    let mapping: MappedFile

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws(GGUFError) {
        try self.init(mapping: MappedFile(path: path))
    }

    init(mapping: MappedFile) throws(GGUFError) {
        self.mapping = mapping
        var reader = Reader(bytes: mapping.bytes)
        guard try reader.bytes(4).elementsEqual("GGUF".utf8) else { throw .badMagic }
        version = try reader.scalar(UInt32.self)
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try reader.scalar(UInt64.self)
        let kvCount = try reader.scalar(UInt64.self)
        // Each key/value needs at least 12 bytes (key length + type), each tensor info at least 24.
        guard kvCount <= UInt64(reader.remaining / 12) else { throw .implausibleCount(field: "metadata", count: kvCount) }
        guard tensorCount <= UInt64(reader.remaining / 24) else { throw .implausibleCount(field: "tensor", count: tensorCount) }
        var metadata: [String: GGUFValue] = [:]
        metadata.reserveCapacity(Int(kvCount))
        for _ in 0..<kvCount {
            let key = try reader.string()
            let type = try reader.scalar(UInt32.self)
            metadata[key] = try reader.value(type: type)
        }
        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard case let .uint32(a) = value, a > 0, a.nonzeroBitCount == 1 else { throw .badAlignment }
            alignment = Int(a)
        }
        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(Int(tensorCount))
        for _ in 0..<tensorCount {
            let name = try reader.string()
            let dimensionCount = try reader.scalar(UInt32.self)
            guard (1...4).contains(dimensionCount) else { throw .badShape(name: name) }
            var dimensions: [Int] = []
            var elements = 1
            for _ in 0..<dimensionCount {
                let d = try reader.scalar(UInt64.self)
                guard d > 0, d < UInt64(Int32.max) else { throw .badShape(name: name) }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                guard !overflow else { throw .badShape(name: name) }
                elements = product
                dimensions.append(Int(d))
            }
            let rawType = try reader.scalar(UInt32.self)
            guard let type = GGMLType(rawValue: rawType) else { throw .unsupportedTensorType(name: name, type: rawType) }
            let offset = try reader.scalar(UInt64.self)
            guard dimensions[0] % type.blockSize == 0 else { throw .badShape(name: name) }
            let (bytes, overflow) = (elements / type.blockSize).multipliedReportingOverflow(by: type.blockBytes)
            guard !overflow, offset < UInt64(Int.max) else { throw .tensorOutOfRange(name: name) }
            infos.append(GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: Int(offset), byteCount: bytes))
        }
        let dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        let dataSize = mapping.count - dataOffset
        var byName: [String: GGUFTensorInfo] = [:]
        for info in infos {
            guard info.offset % alignment == 0, dataSize >= 0, info.offset <= dataSize, info.byteCount <= dataSize - info.offset else {
                throw .tensorOutOfRange(name: info.name)
            }
            guard byName.updateValue(info, forKey: info.name) == nil else { throw .duplicateTensor(name: info.name) }
        }
        self.metadata = metadata
        self.tensorInfos = infos
        self.tensors = byName
        self.alignment = alignment
        self.dataOffset = dataOffset
    }

    /// The bytes of a tensor's data, in place in the mapping (valid while this file is alive).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: mapping.bytes[(dataOffset + tensor.offset)..<(dataOffset + tensor.offset + tensor.byteCount)])
    }

    /// An integer metadata value.
    public func int(_ key: String) throws(GGUFError) -> Int {
        guard let v = metadata[key]?.int else { throw .missing(key) }
        return v
    }

    /// A floating-point metadata value.
    public func double(_ key: String) throws(GGUFError) -> Double {
        guard let v = metadata[key]?.double else { throw .missing(key) }
        return v
    }

    /// A string metadata value.
    public func string(_ key: String) throws(GGUFError) -> String {
        guard let v = metadata[key]?.string else { throw .missing(key) }
        return v
    }
}

/// A bounds-checked little-endian cursor over the mapped bytes.
private struct Reader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    var remaining: Int { bytes.count - offset }

    mutating func bytes(_ n: Int) throws(GGUFError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw .truncated(offset: offset, needed: n) }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    mutating func scalar<T: FixedWidthInteger>(_: T.Type) throws(GGUFError) -> T {
        let raw = try bytes(MemoryLayout<T>.size)
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    mutating func string() throws(GGUFError) -> String {
        let start = offset
        let length = try scalar(UInt64.self)
        guard length <= UInt64(remaining) else { throw .truncated(offset: offset, needed: Int(clamping: length)) }
        let raw = try bytes(Int(length))
        guard let s = String(validating: raw, as: UTF8.self) else { throw .badString(offset: start) }
        return s
    }

    /// Smallest encoded size of a value of `type` (so an array count can be checked before reading).
    static func minimumSize(of type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 8, 10, 11, 12: 8
        case 9: 12
        default: nil
        }
    }

    mutating func value(type: UInt32, depth: Int = 0) throws(GGUFError) -> GGUFValue {
        switch type {
        case 0: return .uint8(try scalar(UInt8.self))
        case 1: return .int8(try scalar(Int8.self))
        case 2: return .uint16(try scalar(UInt16.self))
        case 3: return .int16(try scalar(Int16.self))
        case 4: return .uint32(try scalar(UInt32.self))
        case 5: return .int32(try scalar(Int32.self))
        case 6: return .float32(Float(bitPattern: try scalar(UInt32.self)))
        case 7:
            let b = try scalar(UInt8.self)
            guard b <= 1 else { throw .badValueType(7) }
            return .bool(b == 1)
        case 8: return .string(try string())
        case 9:
            guard depth < 8 else { throw .badValueType(9) }
            let elementType = try scalar(UInt32.self)
            guard let size = Self.minimumSize(of: elementType) else { throw .badValueType(elementType) }
            let count = try scalar(UInt64.self)
            guard count <= UInt64(remaining / size) else { throw .implausibleCount(field: "array", count: count) }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<count {
                values.append(try value(type: elementType, depth: depth + 1))
            }
            return .array(elementType: elementType, values)
        case 10: return .uint64(try scalar(UInt64.self))
        case 11: return .int64(try scalar(Int64.self))
        case 12: return .float64(Double(bitPattern: try scalar(UInt64.self)))
        default: throw .badValueType(type)
        }
    }
}
