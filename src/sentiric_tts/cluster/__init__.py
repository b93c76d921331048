"""The service on a Ray Serve cluster: the same app, its engine calls sent to engine replicas.

Two deployments (app.py):

- `Ingress`: the FastAPI app of create_app() with every door, the text frontend, planning,
  post-processing and encoding. Its Runtime is built as on one machine, except that the engine it
  is given (remote_engine.py) streams each text segment from an engine replica.
- `Engine`: one engine per replica (engine_replica.py), with the same EngineScheduler as on one
  machine to order its calls (first audio first); one replica per GPU, or per CPU share for Piper.
  Its router (routing.py) is Serve's shorter queue of two, preferring for a cloned voice a replica
  that holds its conditioning decoded; the replicas' routing stats (replica_stats.py) also feed the
  ingress's per-replica metrics.

Only engine calls cross between them (text, voice, parameters in; PCM chunks out), so every door
behaves as on one machine. Ray is imported by this package only: the rest of the service runs
without it.
"""
