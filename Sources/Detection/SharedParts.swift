/// Parts several components build from the same source, made once and handed to each: the
/// student ensemble that `st` and `variance` both read, in training and when loading.
public class SharedParts {
    private var parts: [String: Any] = [:]

    /// The part stored under `key`, made by `make` the first time it is asked for.
    public func shared<T>(_ key: String, _ make: () throws -> T) rethrows -> T {
        if let part = parts[key] as? T { return part }
        let part = try make()
        parts[key] = part
        return part
    }
}
