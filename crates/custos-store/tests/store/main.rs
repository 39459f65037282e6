//! The shared `custos-store` test suite.
//!
//! Every check in [`suite`] and [`isolation`] runs against both backends: `sqlite::NAME` on a
//! fresh database file in a temporary directory, `postgres::NAME` in a fresh schema
//! (`custos_test_<uuid>`) of the database named by `CUSTOS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards. When PostgreSQL cannot be
//! reached the `postgres::*` tests are skipped with a message, or fail when `CI=true`.
//!
//! [`tokens`] covers the org-wide PII token map; [`requests`] data subject requests and the
//! record changes of erasures.
//!
//! [`objects`] covers the blob store, which has one implementation; [`errors`] that store errors
//! keep their causes.

mod errors;
mod incidents;
mod isolation;
mod members;
mod notify;
mod objects;
mod operators;
mod regional;
mod requests;
mod sign_in;
mod suite;
mod support;
mod support_requests;
mod tokens;
mod usage;

/// Declares one `#[tokio::test]` per backend for each named `async fn(Harness)`.
macro_rules! on_both_backends {
    ($($path:path => $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::run(crate::support::Backend::Sqlite, $path).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::run(crate::support::Backend::Postgres, $path).await;
                }
            )*
        }
    };
}

on_both_backends! {
    crate::usage::usage_counts_the_org_per_category_and_state => usage_counts_the_org_per_category_and_state,
    crate::incidents::incidents_move_forward_by_compare_and_set_and_warn_once => incidents_move_forward_by_compare_and_set_and_warn_once,
    crate::incidents::incident_notices_are_recorded_once_with_their_messages => incident_notices_are_recorded_once_with_their_messages,
    crate::notify::subject_addresses_leave_the_outbox_when_finished => subject_addresses_leave_the_outbox_when_finished,
    crate::requests::subject_contacts_are_kept_per_org_and_go_with_the_tokens => subject_contacts_are_kept_per_org_and_go_with_the_tokens,
    crate::requests::a_privacy_link_is_used_once_per_org_and_forgotten_after_expiry => a_privacy_link_is_used_once_per_org_and_forgotten_after_expiry,
    crate::notify::outbox_messages_are_claimed_once_retried_and_finished => outbox_messages_are_claimed_once_retried_and_finished,
    crate::notify::the_alert_lease_has_one_holder_and_steps_commit_only_under_it => the_alert_lease_has_one_holder_and_steps_commit_only_under_it,
    crate::regional::orgs_live_in_their_region_and_are_found_from_anywhere => regional_orgs_live_in_their_region,
    crate::regional::a_move_copies_every_row_and_object_and_leaves_nothing_behind => regional_move_copies_every_row_and_object,
    crate::regional::an_interrupted_move_keeps_the_org_whole_and_finishes_when_asked_again => regional_interrupted_move_finishes,
    crate::regional::concurrent_moves_of_one_org_leave_exactly_one_copy => regional_concurrent_moves_leave_one_copy,
    crate::regional::a_move_never_drops_what_was_written_after_its_copy => regional_move_never_drops_later_writes,
    crate::regional::a_move_claim_has_one_holder_and_can_be_asked_about => regional_move_claim_can_be_asked_about,
    crate::members::members_change_rotate_and_remove => members_change_rotate_and_remove,
    crate::members::totp_steps_are_used_once_and_sessions_expire => totp_steps_are_used_once_and_sessions_expire,
    crate::members::org_settings_upsert_per_org => org_settings_upsert_per_org,
    crate::members::last_use_moves_forward_and_disabling_closes_sessions => last_use_moves_forward_and_disabling_closes_sessions,
    crate::members::totp_attempts_are_counted_once_each_and_enrollment_codes_enroll_once => totp_attempts_and_enrollment_codes,
    crate::requests::requests_round_trip_and_update_by_compare_and_set => requests_round_trip_and_update_by_compare_and_set,
    crate::requests::erasure_changes_records_and_tokens_in_their_org_only => erasure_changes_records_and_tokens_in_their_org_only,
    crate::operators::only_the_first_operator_is_added => only_the_first_operator_is_added,
    crate::operators::operator_sessions_end_when_idle_expired_or_signed_out => operator_sessions_end_when_idle_expired_or_signed_out,
    crate::sign_in::sign_in_sessions_end_when_idle_stepped_up_or_signed_out => sign_in_sessions_end_when_idle_stepped_up_or_signed_out,
    crate::sign_in::pending_sign_ins_are_taken_once_and_expired_ones_dropped => pending_sign_ins_are_taken_once_and_expired_ones_dropped,
    crate::sign_in::personal_tokens_are_scoped_expire_and_end_with_their_member => personal_tokens_are_scoped_expire_and_end_with_their_member,
    crate::operators::an_org_is_suspended_and_resumed_once_each => an_org_is_suspended_and_resumed_once_each,
    crate::support_requests::support_requests_round_trip_and_change_by_compare_and_set => support_requests_round_trip_and_change_by_compare_and_set,
    crate::suite::orgs_create_get_list => orgs_create_get_list,
    crate::suite::org_duplicate_id_conflicts => org_duplicate_id_conflicts,
    crate::suite::members_lookup_by_key_hash => members_lookup_by_key_hash,
    crate::suite::member_duplicates_conflict => member_duplicates_conflict,
    crate::suite::records_round_trip_exactly => records_round_trip_exactly,
    crate::suite::records_insert_is_all_or_none => records_insert_is_all_or_none,
    crate::suite::records_list_filters => records_list_filters,
    crate::suite::records_pagination => records_pagination,
    crate::suite::streamed_insert_is_all_or_none => streamed_insert_is_all_or_none,
    crate::suite::overlapping_streams_succeed_or_fail_alone => overlapping_streams_succeed_or_fail_alone,
    crate::suite::subject_listing_tells_refs_with_a_shared_prefix_apart => subject_listing_tells_refs_with_a_shared_prefix_apart,
    crate::suite::transition_is_compare_and_set => transition_is_compare_and_set,
    crate::suite::retention_overrides_upsert => retention_overrides_upsert,
    crate::suite::holds_create_list_release => holds_create_list_release,
    crate::suite::audit_appends_exactly_the_given_events => audit_appends_exactly_the_given_events,
    crate::suite::audit_fails_closed => audit_fails_closed,
    crate::suite::concurrent_appends_are_gap_free => concurrent_appends_are_gap_free,
    crate::suite::audit_query_filters_by_actor_action_target_and_time => audit_query_filters_by_actor_action_target_and_time,
    crate::suite::purge_is_all_or_nothing_under_one_event => purge_is_all_or_nothing_under_one_event,
    crate::suite::termination_starts_once_and_completes_when_empty => termination_starts_once_and_completes_when_empty,
    crate::suite::archive_window_opens_only_on_archived_records => archive_window_opens_only_on_archived_records,
    crate::isolation::tenant_isolation => tenant_isolation,
    crate::errors::a_database_failure_keeps_the_driver_error => database_failure_keeps_the_driver_error,
    crate::tokens::tokens_are_written_with_their_records => tokens_are_written_with_their_records,
    crate::tokens::tokens_insert_is_compare_and_set => tokens_insert_is_compare_and_set,
    crate::tokens::tokens_are_scoped_to_their_org => tokens_are_scoped_to_their_org,
    crate::tokens::concurrent_minters_of_one_number_have_one_winner => concurrent_minters_of_one_number_have_one_winner,
}
