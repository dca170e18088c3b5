//! The sandbox: a Kubernetes API emulator served over real HTTP.
