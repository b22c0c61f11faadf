"""Stand-ins for outside services in the tests: an OpenAI-compatible server on 127.0.0.1."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "sk-test-0123456789"
KNOWN_MODELS = {"gpt-test-instruct", "chat-test"}


def fake_text(prompt, n, i):
    """What the fake model answers: a pure function of the request, so reruns see the same text."""
    subject = prompt.removeprefix("Describe what ").removesuffix(" looks like.")
    return f"\n\n{subject.capitalize()} has shape {i} of {n}"


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.failures = []  # statuses (429, 500) or "timeout" for the next requests, in order
        self.requests = []  # (path, body) of every request
        self.max_n = None  # cap on n per response, like servers that ignore n
        self.answers = []  # texts replacing the generated ones, one list per request, in order
        self.hold_after = None  # answer this many requests, then hold the rest until `release` is set
        self.answered = 0
        self.release = threading.Event()
        self.raw_body = None  # bytes answered with HTTP 200 instead of a completion (a proxy's page, ...)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # a held request whose client was killed
            pass

    def _send(self, status, payload, headers=()):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, message, code, headers=()):
        self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}}, headers)

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests.append((self.path, body))
            failure = server.failures.pop(0) if server.failures else None
            scripted = server.answers.pop(0) if server.answers and body.get("model") in KNOWN_MODELS else None
            hold = server.hold_after is not None and server.answered >= server.hold_after
            server.answered += 1
        if hold:
            server.release.wait(timeout=60)
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._error(401, f"Incorrect API key provided: {self.headers.get('Authorization')}", "invalid_api_key")
        if body["model"] not in KNOWN_MODELS:
            return self._error(404, f"The model `{body['model']}` does not exist", "model_not_found")
        if server.raw_body is not None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(server.raw_body)))
            self.end_headers()
            self.wfile.write(server.raw_body)
            return
        if failure == "timeout":
            time.sleep(1.0)
        elif failure is not None:
            return self._error(failure, "try again later", None, headers=[("Retry-After", "0")])
        asked = body.get("n", 1)
        n = min(asked, server.max_n or 10**6)
        prompt = body["messages"][0]["content"] if self.path == "/v1/chat/completions" else body.get("prompt")
        texts = scripted if scripted is not None else [fake_text(prompt, asked, i) for i in range(n)]
        if self.path == "/v1/chat/completions":
            choices = [{"index": i, "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop"} for i, text in enumerate(texts)]
            obj = "chat.completion"
        elif self.path == "/v1/completions":
            choices = [{"index": i, "text": text, "finish_reason": "stop", "logprobs": None}
                       for i, text in enumerate(texts)]
            obj = "text_completion"
        else:
            return self._error(404, "no such endpoint", None)
        self._send(200, {"id": "x", "object": obj, "created": 0, "model": body["model"], "choices": choices,
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def start(server: FakeOpenAI) -> threading.Thread:
    """Serve `server` on a daemon thread (stop it with `shutdown()` and `server_close()`)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return thread
