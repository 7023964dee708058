"""The gunicorn process that serves flaskr: its hooks, its logs and the serving lock.

flaskr/gunicorn.conf.py holds gunicorn's settings and names the hooks it uses from here.
"""
