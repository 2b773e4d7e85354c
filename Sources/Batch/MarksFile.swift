import Detection
import Foundation
import SafeFiles

/// Reads the marks exported from a report page (marks.csv or marks.json).
public enum MarksFile {
    /// The two marks the page gives.
    public static let kinds: Set<String> = ["defect", "false alarm"]

    /// The marks in a CSV (with a `path,mark` header, fields quoted as RFC 4180) or JSON file.
    public static func read(_ path: String) throws -> [Mark] {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path, maxBytes: 64 << 20)
        } catch let error as FileError {
            throw PipelineError.input("\(path): cannot read marks (\(error.reason))")
        }
        do {
            return try parse(bytes)
        } catch let error as PipelineError {
            throw PipelineError.input("\(path): \(error.description)")
        }
    }

    /// Parses marks from CSV or JSON bytes.
    public static func parse(_ bytes: [UInt8]) throws -> [Mark] {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw PipelineError.input("not a marks file (not UTF-8 text; export marks.csv or marks.json from a report)")
        }
        let trimmed = text.drop { $0.isWhitespace }
        let marks: [Mark]
        if trimmed.first == "[" {
            do {
                marks = try JSONDecoder().decode([Mark].self, from: Data(bytes))
            } catch {
                throw PipelineError.input("not a marks JSON file (an array of {path, mark}): \(error)")
            }
        } else {
            let rows = try csvRows(text)
            guard let header = rows.first, let p = header.firstIndex(of: "path"), let m = header.firstIndex(of: "mark")
            else {
                throw PipelineError.input("not a marks file: the first line must name the columns path and mark")
            }
            marks = try rows.dropFirst().enumerated().compactMap { n, row in
                if row == [""] { return nil }
                guard row.count > max(p, m) else {
                    throw PipelineError.input("line \(n + 2): expected \(header.count) fields, found \(row.count)")
                }
                return Mark(path: row[p], mark: row[m])
            }
        }
        for (n, mark) in marks.enumerated() where !kinds.contains(mark.mark) || mark.path.isEmpty {
            throw PipelineError.input(
                "mark \(n + 1): '\(mark.mark)' for '\(mark.path)' — expected a path and \"defect\" or \"false alarm\"")
        }
        return marks
    }

    /// Splits RFC 4180 CSV into rows of fields (quoted fields may hold commas, quotes and newlines).
    /// Hand-written on purpose: CSV.swift 2.5.2 reads an unterminated quoted field silently to
    /// the end of the file, where a damaged marks file must be refused with a reason.
    static func csvRows(_ text: String) throws -> [[String]] {
        var rows = [[String]](), row = [String](), field = "", quoted = false, atFieldStart = true
        // Characters, not scalars: "\r\n" is one Character.
        var characters = text.makeIterator()
        var pending: Character?
        while let c = pending ?? characters.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let next = characters.next() {
                        if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"" where atFieldStart:
                quoted = true
                atFieldStart = false
            case ",":
                row.append(field)
                field = ""
                atFieldStart = true
            case "\n", "\r\n":
                row.append(field)
                rows.append(row)
                (row, field, atFieldStart) = ([], "", true)
            case "\r":
                break
            default:
                field.append(c)
                atFieldStart = false
            }
        }
        if quoted { throw PipelineError.input("unterminated quoted field") }
        if !field.isEmpty || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }
}
