//! The core conformance suite, once per backend.

mod common;

mod sqlite {
    use super::common;

    brokkr_core::store_conformance_tests!(common::sqlite);
}

mod postgres {
    use super::common;

    brokkr_core::store_conformance_tests!(common::postgres);
}
