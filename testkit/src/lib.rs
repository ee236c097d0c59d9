//! Test-only helpers shared by the workspace: throwaway PostgreSQL, CLI oracles, ports.
