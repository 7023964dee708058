"""The floor: a bare WSGI callable, served by gunicorn with the same flags as flaskr."""


def app(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
