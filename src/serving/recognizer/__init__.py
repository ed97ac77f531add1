"""The recognizer: photo bytes -> top-k landmarks, location and tags, or an honest "unknown". `recognize`
holds `Recognizer`, the one decision rule the app, the service and the tagger share (the model's
probabilities, the taught landmarks of `src.serving.gallery`, the unknown and placement rules);
`runtime` chooses the engine that runs the exported model (OpenVINO or TorchScript); `precision_check`
is the guard behind bfloat16 (does it answer like float32?); `lookalike` warns at enrolment when photos
to be taught look like a landmark the model knows; `maps` draws where the model's landmarks are
(`python -m src map`, and the app's small map). Below the tagger and the web; above src.export and
src.evaluation's rules. `recognition` holds what it answers (`Recognition`, `Guess`), `placement_point` which
placement rule and point it serves, `gallery_combine` how taught landmarks compete without reference photos,
`taught_lookalikes` when a taught look-alike keeps a trained landmark from being placed.
"""
