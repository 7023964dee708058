"""The Flask quickstart's "Hello, World!", served by gunicorn with the same flags as flaskr."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello() -> str:
    return "Hello, World!"
