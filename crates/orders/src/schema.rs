// Written to match migrations/; `diesel print-schema` would print the same.

diesel::table! {
    orders (id) {
        id -> Uuid,
        sale_id -> Text,
        user_id -> Text,
        status -> Text,
        created_at -> Timestamptz,
        persisted_at -> Timestamptz,
    }
}
