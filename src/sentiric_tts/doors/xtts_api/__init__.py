"""xtts-api-server's API (daswer123/xtts-api-server), the one SillyTavern's XTTS provider and the
community LiveKit XTTS plugin call, under PREFIX: its clients append the paths to the base URL a
user types, so `http://host:14030/xtts-api` stands where `http://host:8020` stood.

Imports nothing here: the error handlers (doors/http/errors.py) read PREFIX."""

PREFIX = "/xtts-api"
