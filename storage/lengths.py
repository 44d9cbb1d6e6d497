"""Lengths of the text columns the importer fills (storage.models declares the columns with them).
Constants of their own so that parsing (storage.import_rows, in the parser process) needs no
SQLAlchemy."""

EXTERNAL_ID = 64
NICKNAME = 128
PERSON_NAME = 128
PHONE = 32
EMAIL = 254
GENDER = 8
PROVINCE = 32
CITY = 64
ORDER_NO = 64
SOURCE = 32
CARRIER = 32
TRACKING_NO = 64
PRODUCT_NAME = 200
