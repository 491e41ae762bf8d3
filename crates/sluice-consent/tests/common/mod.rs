pub mod tc_encoder;
