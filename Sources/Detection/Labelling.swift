import Imaging

/// Teaching a trained detector the images a person marked "false alarm".
extension Detector {
    /// This detector with `images` (confirmed normal) learned by its components, so it stops
    /// flagging them: each component learns every patch whose raw value reaches half the
    /// threshold on its own calibrated scale, so the image's map then stays below half the
    /// threshold everywhere (blurring only averages), with a margin, while patches that already
    /// look normal are not duplicated. Calibration is kept. Fails with a clear message when the
    /// model has a component that learns only in training.
    public func learningNormal(from images: [Image]) throws -> (detector: Detector, added: Int) {
        let fixed = settings.components.filter { !$0.type.learnsFromMarks }
        guard fixed.isEmpty else {
            let names = fixed.map(\.rawValue).joined(separator: ", ")
            let learners = ComponentRegistry.types.filter { $0.learnsFromMarks }.map { $0.name.rawValue }.joined(
                separator: ",")
            throw PipelineError.model(
                "this model's \(names) \(fixed.count == 1 ? "component learns" : "components learn") only in training: "
                    + "copy the false-alarm images into the good folder and run `anomap train` again "
                    + "(a model trained with `--components \(learners)` learns from marks without retraining)")
        }
        var inputs = [ComponentInput]()
        for image in images { forEachTile(of: image) { inputs.append($0) } }
        var learned = [any ScoringComponent](), added = 0
        for (component, normalization) in zip(components, componentNormalizations) {
            let limit =
                normalization.normalLevel + 0.5 * max(threshold, 0)
                * (normalization.peakLevel - normalization.normalLevel)
            guard
                let (updated, count) = try component.learningNormalErased(
                    from: inputs, rawLimit: limit, settings: settings)
            else {
                throw PipelineError.model("the \(component.name) component cannot learn from marks")
            }
            learned.append(updated)
            added += count
        }
        let detector = Detector(
            extractor: extractor, components: learned, positional: positional,
            componentNormalizations: componentNormalizations, settings: settings,
            normalization: normalization, scoreNormalization: scoreNormalization,
            threshold: threshold, backboneSHA256: backboneSHA256, shift: shift)
        return (detector, added)
    }
}
