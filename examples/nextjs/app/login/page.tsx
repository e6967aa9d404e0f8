import { CredentialsForm } from "@/components/credentials-form";

export default function Login() {
  return (
    <>
      <h1>Log in</h1>
      <CredentialsForm />
    </>
  );
}
