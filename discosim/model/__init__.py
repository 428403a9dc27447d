"""The model layer: router, input sampler, gates, selection and margins, float formats, weights."""
