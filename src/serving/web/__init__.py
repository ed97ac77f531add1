"""What users reach over a browser or HTTP: `app` is the Voila photo-tagging app (`make app`, served from
app.ipynb; `app_teach` its "Teach a new landmark" panel), `service` the FastAPI JSON service
(`python -m src serve`) with `gallery_api`, its endpoints that teach, list and forget landmarks, and
`uploads`, the checks on what clients upload; `loadtest` measures the service's memory under many huge
uploads. The top of the chain: everything here asks `src.serving.recognizer` and the gallery, and
nothing else in src/ imports from here.
"""
