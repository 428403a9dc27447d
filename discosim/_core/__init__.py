"""The core layer: errors and checks, seeding, results, fitting, runtime, io. Imports nothing else of discosim."""
