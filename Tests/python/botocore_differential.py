#!/usr/bin/env python3
"""botocore as the reference for MedViewAWS's SigV4 signer and event-stream codec.

The Swift test `BotocoreDifferentialTests` writes a JSON file of generated cases, runs this
script once, and compares what botocore answers with what the Swift code produced:

    python3 Tests/python/botocore_differential.py CASES.json RESULTS.json

Input (all strings; bytes as base64):
  sigv4:   [{id, mode: "header"|"query", method, url, headers: [[name, value]], body,
             service, region, access_key, secret_key, token?, epoch, expires?}]
           url is exactly what goes on the wire (path as written, query RFC 3986-encoded).
  bedrock: [{id, model_id, text, region, token?, epoch}]
           a real bedrock-runtime client builds and signs a ConverseStream request.
  eventstream: [{id, bytes, seed, min_piece, max_piece}]
           bytes written by the Swift encoder, fed to EventStreamBuffer in random pieces.

Output: the same ids with botocore's canonical request, string to sign and signature (sigv4),
the captured request (bedrock), or the decoded messages and any ParserError (eventstream).

Nothing touches the network, and the output depends only on the input (fixed clock, seeded
piece sizes), so a run is reproducible. Not collected by pytest (no test_ prefix).
"""

import base64
import datetime
import json
import logging
import random
import sys
import time
import unittest.mock

import botocore
import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer, ParserError


class FixedClock:
    """botocore.auth stamps X-Amz-Date from get_current_datetime(); each case sets `now`."""
    now = datetime.datetime(2015, 8, 30, 12, 36, 0)

    @classmethod
    def get(cls):
        return cls.now

    @classmethod
    def set_epoch(cls, epoch):
        cls.now = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).replace(tzinfo=None)


class SigningLog(logging.Handler):
    """add_auth logs CanonicalRequest, StringToSign and Signature at DEBUG; keep the last of each,
    so botocore's signer runs unmodified."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.items = {}

    def emit(self, record):
        if record.args and isinstance(record.msg, str):
            self.items[record.msg.split(':')[0]] = record.args[0]


def text(value):
    return value.decode('utf-8') if isinstance(value, bytes) else value


def sign(case, log):
    request = AWSRequest(method=case['method'], url=case['url'], data=base64.b64decode(case['body']))
    for name, value in case['headers']:
        request.headers[name] = value  # HTTPHeaders: assignment appends, repeats are kept
    credentials = Credentials(case['access_key'], case['secret_key'], case.get('token'))
    if case['mode'] == 'query':
        auth = botocore.auth.SigV4QueryAuth(credentials, case['service'], case['region'], expires=case['expires'])
    else:
        auth = botocore.auth.SigV4Auth(credentials, case['service'], case['region'])
    FixedClock.set_epoch(case['epoch'])
    log.items.clear()
    auth.add_auth(request)
    return {
        'id': case['id'],
        'canonical_request': log.items['CanonicalRequest'],
        'string_to_sign': log.items['StringToSign'],
        'signature': log.items['Signature'],
        'url': request.url,
        'headers': [[name, text(value)] for name, value in request.headers.items()],
    }


class EmptyStream:
    """Stands in for urllib3's response body: an empty event stream."""

    def stream(self, *args, **kwargs):
        return iter(())

    def close(self):
        pass


def bedrock_requests(cases):
    if not cases:
        return []
    session = botocore.session.get_session()
    results = []
    clients = {}
    for case in cases:
        key = (case['region'], case['access_key'], case['secret_key'], case.get('token'))
        if key not in clients:
            client = session.create_client(
                'bedrock-runtime', region_name=case['region'],
                aws_access_key_id=case['access_key'], aws_secret_access_key=case['secret_key'],
                aws_session_token=case.get('token'),
                config=Config(retries={'max_attempts': 1, 'mode': 'standard'}))
            seen = {}

            def before_send(request, seen=seen, **kwargs):
                seen['request'] = request
                return AWSResponse(request.url, 200, {'content-type': 'application/vnd.amazon.eventstream'}, EmptyStream())

            client.meta.events.register('before-send', before_send)
            clients[key] = (client, seen)
        client, seen = clients[key]
        FixedClock.set_epoch(case['epoch'])
        client.converse_stream(
            modelId=case['model_id'],
            messages=[{'role': 'user', 'content': [{'text': case['text']}]}],
            inferenceConfig={'maxTokens': 64})
        request = seen['request']
        body = request.body if isinstance(request.body, bytes) else (request.body or b'')
        results.append({
            'id': case['id'],
            'method': request.method,
            'url': request.url,
            'headers': [[name, text(value)] for name, value in request.headers.items()],
            'body': base64.b64encode(body).decode(),
        })
    return results


def header_json(value):
    if isinstance(value, bool):  # before int: bool is an int in Python
        return ['bool', value]
    if isinstance(value, int):
        return ['int', str(value)]
    if isinstance(value, bytes):
        return ['bytes', base64.b64encode(value).decode()]
    return ['str', value]


def decode(case):
    data = base64.b64decode(case['bytes'])
    rng = random.Random(case['seed'])
    buffer = EventStreamBuffer()
    messages, error, offset = [], None, 0
    try:
        while offset < len(data):
            size = rng.randint(case['min_piece'], case['max_piece'])
            buffer.add_data(data[offset:offset + size])
            offset += size
            for message in buffer:
                messages.append({
                    'total_length': message.prelude.total_length,
                    'headers_length': message.prelude.headers_length,
                    'prelude_crc': message.prelude.crc,
                    'message_crc': message.crc,
                    'headers': [[name] + header_json(value) for name, value in message.headers.items()],
                    'payload': base64.b64encode(message.payload).decode(),
                })
    except ParserError as exc:
        error = type(exc).__name__
    return {'id': case['id'], 'messages': messages, 'error': error, 'leftover': len(buffer._data)}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    started = time.monotonic()
    with open(sys.argv[1], encoding='utf-8') as f:
        cases = json.load(f)
    log = SigningLog()
    auth_logger = logging.getLogger('botocore.auth')
    auth_logger.addHandler(log)
    auth_logger.setLevel(logging.DEBUG)
    auth_logger.propagate = False
    with unittest.mock.patch('botocore.auth.get_current_datetime', side_effect=FixedClock.get):
        results = {
            'botocore_version': botocore.__version__,
            'sigv4': [sign(case, log) for case in cases.get('sigv4', [])],
            'bedrock': bedrock_requests(cases.get('bedrock', [])),
            'eventstream': [decode(case) for case in cases.get('eventstream', [])],
        }
    results['seconds'] = round(time.monotonic() - started, 3)
    with open(sys.argv[2], 'w', encoding='utf-8') as f:
        json.dump(results, f, ensure_ascii=False)


if __name__ == '__main__':
    main()
