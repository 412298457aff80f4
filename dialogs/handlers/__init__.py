"""Small async handlers shared by the SMS and USSD dialogs: views, confirmable actions, errors."""
