//! vigil: real-time IoT ingestion and monitoring.
pub mod ingest;
