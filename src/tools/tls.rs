//! The TLS provider of the MCP HTTP client. rmcp's reqwest (0.13) is built without a bundled
//! provider, so the process default must be set once: ring, already in the tree through
//! the upstream client, rather than aws-lc-rs and its C build.

/// Installs ring as the process's default rustls provider, once; later calls do nothing.
pub fn install_default_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err means a provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
