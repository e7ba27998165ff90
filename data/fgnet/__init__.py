"""FG-NET aging database (age test set): 1,002 images of 82 subjects, age in the file name."""
