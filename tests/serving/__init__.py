"""The tests of flaskr/serving/, one module for each of its modules."""
