"""nk-keras: extended neural-network solutions of macro models (Kase, Melosi & Rottner)."""
