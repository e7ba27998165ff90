"""IMDB-WIKI (age from date of birth and photo year, gender) from the official face crops."""
