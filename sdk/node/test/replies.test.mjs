// Reply helpers: the exact JSON hookbox reads, and early errors for options a hook ignores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  allow, deny, allowConnect, allowCreateChannel, allowSubscribe, allowUnsubscribe, allowPublish,
  allowMessage, allowDestroyChannel, pollReply, CHANNEL_OPTIONS, USER_OPTIONS,
} from 'hookbox-sdk';

test('allow and deny', () => {
  assert.deepEqual(allow(), [true, {}]);
  assert.deepEqual(allow({ anything: 1, dropped: undefined }), [true, { anything: 1 }]);
  assert.deepEqual(deny(), [false, {}]);
  assert.deepEqual(deny('Please log in'), [false, { error: 'Please log in' }]);
  assert.equal(JSON.stringify(deny({ code: 7 })), '[false,{"error":{"code":7}}]');
});

test('per-hook helpers take exactly the options their hook honours', () => {
  assert.deepEqual(
    allowConnect({ name: 'alice', override_payload: { hi: 1 }, auto_subscribe: ['news'], auto_unsubscribe: ['old'], reflective: false, moderated_message: false, per_connection_subscriptions: true, global_unsubscriptions: true }),
    [true, { name: 'alice', override_payload: { hi: 1 }, auto_subscribe: ['news'], auto_unsubscribe: ['old'], reflective: false, moderated_message: false, per_connection_subscriptions: true, global_unsubscriptions: true }],
  );
  assert.deepEqual(allowCreateChannel({ history_size: 20, presenceful: true }), [true, { history_size: 20, presenceful: true }]);
  assert.deepEqual(allowCreateChannel(), [true, {}]);
  assert.deepEqual(allowSubscribe({ initial_data: { motd: 'hi' } }), [true, { initial_data: { motd: 'hi' } }]);
  assert.deepEqual(allowUnsubscribe({ auto_subscribe: ['lobby'] }), [true, { auto_subscribe: ['lobby'] }]);
  assert.deepEqual(allowPublish({ override_payload: null, only_to_sender: true }), [true, { override_payload: null, only_to_sender: true }]);
  assert.deepEqual(allowMessage({ override_recipient_name: 'bob' }), [true, { override_recipient_name: 'bob' }]);
  assert.deepEqual(allowDestroyChannel(), [true, {}]);
  assert.deepEqual(pollReply({ payload: { n: 1 }, history_size: 3 }), [true, { payload: { n: 1 }, history_size: 3 }]);
  assert.deepEqual(pollReply(), [true, { payload: null }]);
  assert.equal(CHANNEL_OPTIONS.length, 15);
  assert.equal(USER_OPTIONS.length, 5);
});

test('options a hook does not honour throw at once', () => {
  assert.throws(() => allowConnect({}), /name must be a non-empty string/);
  assert.throws(() => allowConnect({ name: '' }), /name must be a non-empty string/);
  assert.deepEqual(allowConnect({ name: 'a', resume_ttl: 300 }), [true, { name: 'a', resume_ttl: 300 }]);
  assert.throws(() => allowConnect({ name: 'a', resume_ttl: 0 }), /resume_ttl must be a positive number/);
  assert.throws(() => allowConnect({ name: 'a', autoSubscribe: ['x'] }), /autoSubscribe is not a reply option/);
  // create_channel takes channel options only: hookbox would fail the creation with
  // "Invalid keyword argument error".
  assert.throws(() => allowCreateChannel({ error: 'no' }), /error is not a reply option/);
  assert.throws(() => allowPublish({ initial_data: 1 }), TypeError);
  assert.throws(() => allowSubscribe({ override_payload: 1 }), TypeError);
  assert.throws(() => allowMessage({ only_to_sender: true }), TypeError);
  assert.throws(() => pollReply({ name: 'x' }), TypeError);
  assert.throws(() => allowPublish([]), /must be an object/);
});
