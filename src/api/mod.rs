//! The api.video client: auth (Basic / Bearer), upload tokens, videos, uploads with a delegated token.
